#!/usr/bin/env node
// Offline checks for what `kubernetes-validate` cannot see, used by ops/validate.
//
//   node ops/validate-crs.mjs [--expect Kind,Kind] [--policy] FILE.yaml...
//   node ops/validate-crs.mjs --compose compose.yml
//
// 1. Custom resources (Argo CD Application, Argo Rollouts Rollout / AnalysisTemplate, KEDA
//    ScaledObject) are validated against the JSON schemas shipped in
//    @kubernetes-models/argo-cd@4.0.0, @kubernetes-models/argo-rollouts@2.0.0 and
//    @kubernetes-models/keda@2.0.0. Any other argoproj.io or keda.sh kind fails (no schema).
// 2. --expect: each named kind must occur at least once (guards against empty builds).
// 3. --policy (on rendered `kubectl kustomize` output): the rules this project relies on:
//    tagged images (never `latest`), CPU requests and memory limits, probes, non-root,
//    no replicas on an HPA-managed workload, shutdown timeout < grace period, exec-form worker,
//    never an HPA and a KEDA ScaledObject on the same workload (they fight over replicas).
// 4. --compose: the same shutdown and scaling rules for compose.yml, and restart policies.
//
// Packages are looked up in $VALIDATE_NODE_MODULES (ops/validate installs them into
// .run/validate-node/node_modules), so nothing is installed next to this file.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const modulesDir = process.env.VALIDATE_NODE_MODULES
  ?? path.join(here, "..", ".run", "validate-node", "node_modules");

async function load(rel) {
  return import(pathToFileURL(path.join(modulesDir, rel)).href);
}

const yaml = await load("js-yaml/dist/js-yaml.mjs");
const models = {
  "argoproj.io/v1alpha1/Application":
    (await load("@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application.js")).Application,
  "argoproj.io/v1alpha1/Rollout":
    (await load("@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout.js")).Rollout,
  "argoproj.io/v1alpha1/AnalysisTemplate":
    (await load("@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate.js")).AnalysisTemplate,
  "keda.sh/v1alpha1/ScaledObject":
    (await load("@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.js")).ScaledObject,
};

let failed = 0;
let passed = 0;
const ok = (msg) => { passed++; console.log(`OK   ${msg}`); };
const fail = (msg) => { failed++; console.log(`FAIL ${msg}`); };

// ---- arguments -----------------------------------------------------------------------------
const args = process.argv.slice(2);
let expect = [];
let policy = false;
let compose = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--expect") expect = args[++i].split(",").filter(Boolean);
  else if (args[i] === "--policy") policy = true;
  else if (args[i] === "--compose") compose = args[++i];
  else files.push(args[i]);
}

const seconds = (v) => {
  // compose durations ("40s", "1m30s") and plain numbers
  if (typeof v === "number") return v;
  const m = String(v).match(/^(?:(\d+)m)?(?:(\d+)s)?$/);
  if (!m || (!m[1] && !m[2])) return Number.NaN;
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
};

const imageTagged = (image) => {
  if (typeof image !== "string" || image.includes("@sha256:")) return typeof image === "string";
  const last = image.split("/").pop();
  return last.includes(":") && !last.endsWith(":latest");
};

// ---- compose -------------------------------------------------------------------------------
if (compose) {
  const doc = yaml.load(fs.readFileSync(compose, "utf8"));
  const services = doc?.services ?? {};
  for (const [name, svc] of Object.entries(services)) {
    if (svc.image && !svc.build && !imageTagged(svc.image)) {
      fail(`${compose} services.${name}: image ${svc.image} needs a concrete tag (not latest)`);
    }
    const env = svc.environment ?? {};
    const timeout = Array.isArray(env)
      ? Number((env.find((e) => e.startsWith("SHUTDOWN_TIMEOUT=")) ?? "").split("=")[1])
      : Number(env.SHUTDOWN_TIMEOUT);
    if (Number.isFinite(timeout) && timeout > 0) {
      const grace = seconds(svc.stop_grace_period ?? "10s");
      if (grace > timeout) ok(`${compose} services.${name}: stop_grace_period ${grace}s > SHUTDOWN_TIMEOUT ${timeout}s`);
      else fail(`${compose} services.${name}: stop_grace_period ${grace}s must exceed SHUTDOWN_TIMEOUT ${timeout}s`);
      if (svc.container_name || (svc.ports ?? []).length) {
        fail(`${compose} services.${name}: a scalable worker needs no container_name and no host ports`);
      } else ok(`${compose} services.${name}: scalable (no container_name, no host ports)`);
    }
    // Workers (they have a shutdown budget) and the web restart like a Deployment's pods:
    // Stop on the Busy page ends a worker with exit 0, which "on-failure" would not restart.
    if ((Number.isFinite(timeout) && timeout > 0) || name === "web") {
      if (["always", "unless-stopped"].includes(svc.restart)) ok(`${compose} services.${name}: restart ${svc.restart}`);
      else fail(`${compose} services.${name}: needs restart: unless-stopped (or always), got ${svc.restart ?? "none"}`);
    }
    if (/^(sh|bash)$/.test(String((svc.command ?? [])[0] ?? "").split(" ")[0])) {
      fail(`${compose} services.${name}: runs via a shell; SIGTERM would not reach the process`);
    }
  }
  const unleash = Object.entries(services).find(([, s]) => String(s.image ?? "").includes("unleash-server"));
  if (unleash) {
    const url = String(unleash[1].environment?.DATABASE_URL ?? "");
    if (url.startsWith("postgres")) ok(`${compose} services.${unleash[0]}: PostgreSQL database`);
    else fail(`${compose} services.${unleash[0]}: Unleash needs PostgreSQL, got DATABASE_URL=${url}`);
  }
}

// ---- manifests -----------------------------------------------------------------------------
const seen = new Map();
const docs = [];
for (const f of files) {
  for (const doc of yaml.loadAll(fs.readFileSync(f, "utf8"))) {
    if (!doc) continue;
    docs.push({ f, doc });
    seen.set(doc.kind, (seen.get(doc.kind) ?? 0) + 1);
    const id = `${f} ${doc.kind}/${doc.metadata?.name}`;
    const key = `${doc.apiVersion}/${doc.kind}`;
    const Model = models[key];
    if (Model) {
      try { new Model(doc).validate(); ok(`${id} (schema)`); }
      catch (e) { fail(`${id}: ${e.message}`); }
    } else if (/^(argoproj\.io|keda\.sh)\//.test(String(doc.apiVersion))) {
      fail(`${id}: no schema for ${key}`);
    }
  }
}
for (const kind of expect) {
  if (seen.get(kind)) ok(`found ${seen.get(kind)} × ${kind}`);
  else fail(`expected at least one ${kind} in ${files.join(" ")}`);
}

const podSpecOf = (doc) => {
  if (["Deployment", "StatefulSet", "DaemonSet", "Rollout", "Job"].includes(doc.kind)) {
    return doc.spec?.template?.spec;
  }
  return undefined;
};

if (policy) {
  const configMaps = new Map(docs.filter(({ doc }) => doc.kind === "ConfigMap")
    .map(({ doc }) => [doc.metadata.name, doc.data ?? {}]));
  const hpaTargets = new Set(docs.filter(({ doc }) => doc.kind === "HorizontalPodAutoscaler")
    .map(({ doc }) => `${doc.spec.scaleTargetRef.kind}/${doc.spec.scaleTargetRef.name}`));
  // KEDA's scaleTargetRef defaults to a Deployment; KEDA creates its own HPA for it.
  const kedaTargets = new Set(docs.filter(({ doc }) => doc.kind === "ScaledObject")
    .map(({ doc }) => `${doc.spec.scaleTargetRef.kind ?? "Deployment"}/${doc.spec.scaleTargetRef.name}`));
  for (const t of kedaTargets) {
    if (hpaTargets.has(t)) fail(`${t}: scaled by both an HPA and a KEDA ScaledObject (delete the HPA in that overlay)`);
    else ok(`${t}: scaled by KEDA only`);
  }

  for (const { f, doc } of docs) {
    const pod = podSpecOf(doc);
    if (!pod) continue;
    const id = `${f} ${doc.kind}/${doc.metadata.name}`;
    const problems = [];
    const nonRootPod = pod.securityContext?.runAsNonRoot === true;
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      const init = (pod.initContainers ?? []).includes(c);
      if (!imageTagged(c.image)) problems.push(`container ${c.name}: image ${c.image} has no concrete tag`);
      if (!c.resources?.requests?.cpu) problems.push(`container ${c.name}: no CPU request`);
      if (!c.resources?.limits?.memory) problems.push(`container ${c.name}: no memory limit`);
      if (!nonRootPod && c.securityContext?.runAsNonRoot !== true) problems.push(`container ${c.name}: not runAsNonRoot`);
      if (c.securityContext?.allowPrivilegeEscalation !== false) problems.push(`container ${c.name}: allowPrivilegeEscalation not false`);
      if (!init && !(c.readinessProbe && c.livenessProbe)) problems.push(`container ${c.name}: needs liveness and readiness probes`);
    }
    const scaled = hpaTargets.has(`${doc.kind}/${doc.metadata.name}`) || kedaTargets.has(`${doc.kind}/${doc.metadata.name}`);
    if (scaled && doc.spec.replicas !== undefined) {
      problems.push("managed by an HPA but sets spec.replicas (every sync would reset the HPA)");
    }
    // Shutdown budget: any container configured with SHUTDOWN_TIMEOUT.
    for (const c of pod.containers ?? []) {
      let timeout = (c.env ?? []).find((e) => e.name === "SHUTDOWN_TIMEOUT")?.value;
      for (const ref of c.envFrom ?? []) {
        const data = ref.configMapRef && configMaps.get(ref.configMapRef.name);
        if (timeout === undefined && data?.SHUTDOWN_TIMEOUT) timeout = data.SHUTDOWN_TIMEOUT;
      }
      if (timeout === undefined) continue;
      const grace = pod.terminationGracePeriodSeconds ?? 30;
      if (!(grace > Number(timeout))) {
        problems.push(`terminationGracePeriodSeconds ${grace} must exceed SHUTDOWN_TIMEOUT ${timeout}`);
      }
      if (c.command && /^(sh|bash|\/bin\/sh|\/bin\/bash)$/.test(c.command[0])) {
        problems.push(`container ${c.name}: started via a shell; SIGTERM would not reach the worker`);
      }
    }
    if (problems.length) for (const p of problems) fail(`${id}: ${p}`);
    else ok(`${id} (policy)`);
  }
  for (const { f, doc } of docs) {
    if (doc.kind !== "HorizontalPodAutoscaler") continue;
    const ref = doc.spec.scaleTargetRef;
    const target = docs.find(({ doc: d }) => d.kind === ref.kind && d.metadata?.name === ref.name);
    const id = `${f} HorizontalPodAutoscaler/${doc.metadata.name}`;
    if (!target) fail(`${id}: scale target ${ref.kind}/${ref.name} is not in the build`);
    else ok(`${id} targets ${ref.kind}/${ref.name}`);
  }
}

console.log(`validate-crs: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
