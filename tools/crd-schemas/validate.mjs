#!/usr/bin/env node
// Validate Argo CD, Argo Rollouts and Flux objects against their CRD schemas, offline.
//
//   node tools/crd-schemas/validate.mjs [--list] [FILE...]     (no FILE, or `-`: read standard input)
//
// Each FILE holds YAML or JSON documents (`kubectl kustomize` output, a plain manifest). A document whose
// apiVersion/kind one of the @kubernetes-models packages knows is checked with that package's generated
// validator (the JSON schema of the controller's CRD); other kinds (Deployment, Service, ...) are skipped.
// The generated schemas check types, enums and required fields, not unknown keys: a misspelt field name is
// not an error here (the API server prunes it too), so tests assert the fields that matter by name.
// One line per error on stderr: `<file>: <Kind>/<name>: <path>: <message>`; exit 1 when there is any.
// --list prints one line per object validated: a test can tell a validated object from a skipped one.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as argoCd from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
import * as argoRollouts from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import * as fluxHelm from "@kubernetes-models/flux-cd/helm.toolkit.fluxcd.io/v2";
import * as fluxImage from "@kubernetes-models/flux-cd/image.toolkit.fluxcd.io/v1";
import * as fluxKustomize from "@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1";
import * as fluxNotification from "@kubernetes-models/flux-cd/notification.toolkit.fluxcd.io/v1";
import * as fluxSource from "@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1";

// Argo CD and Argo Rollouts share the group argoproj.io/v1alpha1 but not a kind; Argo CD is listed first.
const MODULES = [argoCd, argoRollouts, fluxHelm, fluxImage, fluxKustomize, fluxNotification, fluxSource];

function modelsByType() {
  const models = new Map();
  for (const module of MODULES) {
    for (const model of Object.values(module)) {
      if (typeof model === "function" && model.apiVersion && model.kind) {
        const type = `${model.apiVersion} ${model.kind}`;
        if (!models.has(type)) models.set(type, model);
      }
    }
  }
  return models;
}

// `/spec/syncPolicy/automated/prune` -> `spec.syncPolicy.automated.prune`, `/spec/steps/0` -> `spec.steps[0]`
function fieldPath(error) {
  let path = "";
  for (const part of error.instancePath.split("/").slice(1)) {
    const key = part.replaceAll("~1", "/").replaceAll("~0", "~");
    path += /^\d+$/.test(key) ? `[${key}]` : `${path ? "." : ""}${key}`;
  }
  const extra = error.params?.additionalProperty;
  if (extra !== undefined) path += `${path ? "." : ""}${extra}`;
  return path || "(the object)";
}

function describe(error) {
  const allowed = error.params?.allowedValues;
  return allowed ? `${error.message}: ${allowed.join(", ")}` : error.message;
}

export function validateText(text, source, models) {
  const errors = [];
  const validated = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) {
      for (const err of doc.errors) errors.push(`${source}: YAML: ${err.message.split("\n")[0]}`);
      continue;
    }
    const object = doc.toJS();
    if (!object || typeof object !== "object") continue;
    const model = models.get(`${object.apiVersion} ${object.kind}`);
    if (!model) continue;
    const name = `${object.kind}/${object.metadata?.name ?? "(no name)"}`;
    try {
      new model(object).validate();
      validated.push(`${source}: ${object.apiVersion} ${name}`);
    } catch (err) {
      if (!Array.isArray(err.errors)) throw err;
      for (const e of err.errors) errors.push(`${source}: ${name}: ${fieldPath(e)}: ${describe(e)}`);
    }
  }
  return { errors, validated };
}

function main(argv) {
  const list = argv.includes("--list");
  const files = argv.filter((arg) => arg !== "--list");
  const models = modelsByType();
  let failed = 0;
  let count = 0;
  for (const file of files.length ? files : ["-"]) {
    let text;
    try {
      text = readFileSync(file === "-" ? 0 : file, "utf8");
    } catch (err) {
      console.error(`${file}: cannot read: ${err.message}`);
      failed += 1;
      continue;
    }
    const { errors, validated } = validateText(text, file === "-" ? "<stdin>" : file, models);
    for (const line of errors) console.error(line);
    if (list) for (const line of validated) console.log(`${line}: ok`);
    failed += errors.length;
    count += validated.length;
  }
  console.log(`crd-schemas: ${count} object(s) valid, ${failed} error(s)`);
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
