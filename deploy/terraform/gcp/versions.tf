# What the Vertex AI path and the template need in one GCP project (docs/deployment.md, "Deploy to Vertex AI").
# `terraform init` and `validate` need the google provider from its registry; CI here checks these files offline
# (tests/ops/deliver/test_terraform_gcp.py: parsed, and the policy rules asserted).
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
