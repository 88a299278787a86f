locals {
  services = [
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com",
  ]
  # The GitHub Actions jobs that run in an environment present `environment` in their OIDC token.
  environment_members = {
    for env, _ in var.environments :
    env => "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.environment/${env}"
  }
  repository_member = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
}

resource "google_project_service" "needed" {
  for_each           = toset(local.services)
  service            = each.value
  disable_on_destroy = false
}

# ------------------------------------------------------------------------------------------ the DVC remote

resource "google_storage_bucket" "dvc" {
  name                        = "${var.project_id}-${var.name}-dvc"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  depends_on = [google_project_service.needed]
}

# ------------------------------------------------------------------------------ the images Vertex AI runs

resource "google_artifact_registry_repository" "serving" {
  repository_id = "${var.name}-serving"
  location      = var.region
  format        = "DOCKER"
  description   = "Serving images copied by digest from the deploy workflow (ops.deliver.vertex)."

  depends_on = [google_project_service.needed]
}

# --------------------------------------------------------------- GitHub's OIDC tokens, this repository only

resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = "${var.name}-github"
  display_name              = "GitHub Actions"
  description               = "OIDC tokens of ${var.github_repository}'s workflows."

  depends_on = [google_project_service.needed]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub"
  attribute_mapping = {
    "google.subject"        = "assertion.sub"
    "attribute.repository"  = "assertion.repository"
    "attribute.environment" = "assertion.environment"
    "attribute.ref"         = "assertion.ref"
  }
  # Tokens of any other repository are refused before any binding is looked at.
  attribute_condition = "assertion.repository == '${var.github_repository}'"

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

# ------------------------------------------------------------- per environment: who deploys, what it runs as

resource "google_service_account" "deploy" {
  for_each     = var.environments
  account_id   = "${var.name}-deploy-${each.key}"
  display_name = "Deploys ${var.name} to Vertex AI (${each.key})"
}

resource "google_service_account" "serve" {
  for_each     = var.environments
  account_id   = "${var.name}-serve-${each.key}"
  display_name = "The ${var.name} model on Vertex AI runs as this (${each.key}); it needs no role"
}

# Only a job of this repository that runs in the GitHub Environment of the same name may impersonate it.
resource "google_service_account_iam_member" "deploy_from_github" {
  for_each           = var.environments
  service_account_id = google_service_account.deploy[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = local.environment_members[each.key]
}

# deploy-model names the serving account: the deployer must be allowed to act as that one, and no other.
resource "google_service_account_iam_member" "deploy_acts_as_serve" {
  for_each           = var.environments
  service_account_id = google_service_account.serve[each.key].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.deploy[each.key].email}"
}

resource "google_artifact_registry_repository_iam_member" "deploy_pushes" {
  for_each   = var.environments
  location   = google_artifact_registry_repository.serving.location
  repository = google_artifact_registry_repository.serving.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.deploy[each.key].email}"
}

# What ops.deliver.vertex calls, and nothing else (no roles/aiplatform.user: it could also run training jobs).
# Each long-running operation is polled with the same resource's `.get` permission.
resource "google_project_iam_custom_role" "vertex_deployer" {
  role_id     = "${replace(var.name, "-", "_")}_vertex_deployer"
  title       = "Deploy a model version to a Vertex AI endpoint"
  description = "gcloud ai models upload/describe; ai endpoints describe/deploy-model/update/predict/undeploy-model"
  permissions = [
    "aiplatform.endpoints.deploy",
    "aiplatform.endpoints.get",
    "aiplatform.endpoints.predict",
    "aiplatform.endpoints.undeploy",
    "aiplatform.endpoints.update",
    "aiplatform.models.get",
    "aiplatform.models.upload",
  ]
}

resource "google_project_iam_member" "deploy_vertex" {
  for_each = var.environments
  project  = var.project_id
  role     = google_project_iam_custom_role.vertex_deployer.name
  member   = "serviceAccount:${google_service_account.deploy[each.key].email}"
}

resource "google_vertex_ai_endpoint" "env" {
  for_each     = var.environments
  name         = each.value
  display_name = "${var.name}-${each.key}"
  description  = "${var.name} in ${each.key}: the deploy workflow's vertex job rolls each model version out here."
  location     = var.region
  labels = {
    environment = each.key
    project     = var.name
  }

  depends_on = [google_project_service.needed]
}

# --------------------------------------------------------------------------- the DVC remote's two roles

resource "google_service_account" "dvc_read" {
  account_id   = "${var.name}-dvc-read"
  display_name = "Reads the ${var.name} DVC remote (CI, the image job)"
}

resource "google_service_account" "dvc_write" {
  account_id   = "${var.name}-dvc-write"
  display_name = "Writes the ${var.name} DVC remote (retrain.yaml, in its retrain environment)"
}

resource "google_service_account_iam_member" "dvc_read_from_github" {
  service_account_id = google_service_account.dvc_read.name
  role               = "roles/iam.workloadIdentityUser"
  member             = local.repository_member
}

resource "google_service_account_iam_member" "dvc_write_from_retrain" {
  service_account_id = google_service_account.dvc_write.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.environment/retrain"
}

resource "google_storage_bucket_iam_member" "dvc_read" {
  bucket = google_storage_bucket.dvc.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.dvc_read.email}"
}

resource "google_storage_bucket_iam_member" "dvc_write" {
  bucket = google_storage_bucket.dvc.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.dvc_write.email}"
}
