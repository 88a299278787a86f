variable "project_id" {
  description = "The GCP project that holds everything here (it must exist, with billing)."
  type        = string
}

variable "region" {
  description = "Region of the bucket, the Artifact Registry repository and the Vertex AI endpoints."
  type        = string
  default     = "europe-west4"
}

variable "name" {
  description = "Prefix of every name: params.yaml project.name (a DNS label)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,11}$", var.name))
    error_message = "name: a lowercase DNS label of at most 12 characters (service account ids hold at most 30)."
  }
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows may deploy: the only one the OIDC provider admits."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository: owner/name."
  }
}

variable "environments" {
  description = "The GitHub Environments that deploy (deploy.yaml), each with its endpoint id (numeric, at most 10 digits, unique in the region)."
  type        = map(string)
  default = {
    staging    = "1000000001"
    production = "1000000002"
  }

  validation {
    condition     = alltrue([for id in values(var.environments) : can(regex("^[1-9][0-9]{0,9}$", id))])
    error_message = "environments: each endpoint id is a number of at most 10 digits, without a leading zero."
  }
}
