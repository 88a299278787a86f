# Each output is a GitHub variable of the deploy workflow's vertex job (docs/deployment.md, "Deploy to Vertex AI"):
# the description names it, and whether it is a repository variable or one per GitHub Environment.

output "project_id" {
  description = "repository variable GCP_PROJECT_ID"
  value       = var.project_id
}

output "region" {
  description = "repository variable GCP_REGION"
  value       = var.region
}

output "artifact_repository" {
  description = "repository variable GCP_ARTIFACT_REPOSITORY"
  value       = google_artifact_registry_repository.serving.repository_id
}

output "workload_identity_provider" {
  description = "repository variable GCP_WORKLOAD_IDENTITY_PROVIDER"
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "deploy_service_accounts" {
  description = "environment variable GCP_SERVICE_ACCOUNT (per GitHub Environment)"
  value       = { for env, account in google_service_account.deploy : env => account.email }
}

output "serve_service_accounts" {
  description = "environment variable VERTEX_SERVICE_ACCOUNT (per GitHub Environment)"
  value       = { for env, account in google_service_account.serve : env => account.email }
}

output "endpoint_ids" {
  description = "environment variable VERTEX_ENDPOINT_ID (per GitHub Environment)"
  value       = { for env, endpoint in google_vertex_ai_endpoint.env : env => endpoint.name }
}

output "dvc_remote" {
  description = "not a variable: `dvc remote add -d storage <this>`; the DVC service accounts below read and write it"
  value       = "gs://${google_storage_bucket.dvc.name}"
}

output "dvc_service_accounts" {
  description = "not variables yet: the GCS remote's read (CI) and write (retrain) identities"
  value       = { read = google_service_account.dvc_read.email, write = google_service_account.dvc_write.email }
}
