//! `loadtest k8s render`: the manifests of a distributed run on plain
//! Kubernetes objects, with no operator: the scenario as a ConfigMap and
//! one `batch/v1` Indexed Job whose pod *j* runs shard *j* of *N*.
//!
//! What the Job is made of, and why:
//! - `completionMode: Indexed`, `completions = parallelism = N`: every
//!   shard runs at once, its index from `JOB_COMPLETION_INDEX`;
//! - `restartPolicy: Never`, `backoffLimit: 0`: a shard run again would
//!   replay its share late, so no pod is retried;
//! - a `podFailurePolicy` that fails the whole Job when a shard exits with
//!   the abort code (3), the late-start code (5) or bad input (2), so one
//!   `--abort-on-fail` stops every pod with no coordinator (the Job
//!   controller deletes the others);
//! - requests = limits (Guaranteed QoS), so no generator is CPU-throttled,
//!   and as many worker threads as CPUs;
//! - pods spread across nodes (`topologySpreadConstraints`), so the load
//!   enters through several, as real traffic does;
//! - an `activeDeadlineSeconds` past the start plus the run, so a Job that
//!   cannot finish does not hold its nodes.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Outcome;
use crate::cli::{K8sRenderArgs, RunArgs};
use crate::scenario::Scenario;

/// Where the ConfigMap's scenario is mounted in each pod.
const SCENARIO_PATH: &str = "/scenario/scenario.toml";

pub fn render(a: &K8sRenderArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&a.scenario)
        .with_context(|| format!("cannot read {}", a.scenario.display()))?;
    let scn = Scenario::load(&a.scenario)?;
    if a.parallelism == 0 || a.parallelism > 10_000 {
        bail!(
            "--parallelism must be 1 to 10000 pods, got {}",
            a.parallelism
        );
    }
    if a.cpu == 0 {
        bail!("--cpu must be >= 1");
    }
    let start = a.start_at.unwrap_or_else(|| SystemTime::now() + a.start_in);
    // Every shard's run must be valid, the smallest share included.
    let last = loadgen::Shard {
        index: a.parallelism - 1,
        count: a.parallelism,
    };
    let args = RunArgs {
        scenario: Some(a.scenario.clone()),
        shard: Some(last),
        workers: Some(a.cpu as usize),
        ..RunArgs::default()
    };
    let settings = crate::run_cmd::resolve(&args, &scn, None)
        .with_context(|| format!("{}", a.scenario.display()))?;
    let url = &settings.plan.target.url;
    if is_loopback(url) {
        bail!(
            "{}: [target] url {url} is this machine's loopback, which the pods cannot reach: give the service's address in the cluster",
            a.scenario.display()
        );
    }
    let name = dns_label(a.name.as_deref().unwrap_or(&scn.name))?;
    let run_for =
        settings.warmup + crate::run_cmd::run_length(&settings.plan) + settings.plan.timeout;
    let m = Manifests {
        name: &name,
        namespace: &a.namespace,
        image: &a.image,
        n: a.parallelism,
        cpu: a.cpu,
        memory: &a.memory,
        start,
        tolerance: a.start_tolerance,
        deadline: start.duration_since(SystemTime::now()).unwrap_or_default()
            + run_for
            + Duration::from_secs(600),
    };
    let mut out = String::new();
    for (i, doc) in [m.config_map(&text), m.job()].iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        yaml(doc, 0, &mut out);
    }
    print!("{out}");
    Ok(Outcome::Passed)
}

/// What the manifests are made of.
struct Manifests<'a> {
    name: &'a str,
    namespace: &'a str,
    image: &'a str,
    n: u32,
    cpu: u32,
    memory: &'a str,
    start: SystemTime,
    tolerance: Duration,
    deadline: Duration,
}

impl Manifests<'_> {
    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/name": "loadtest",
            "app.kubernetes.io/instance": self.name,
        })
    }

    fn config_map(&self, scenario: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels()},
            "data": {"scenario.toml": scenario},
        })
    }

    fn job(&self) -> Value {
        let resources = json!({"cpu": self.cpu.to_string(), "memory": self.memory});
        let args = json!([
            "run",
            SCENARIO_PATH,
            "--shard",
            format!("$(JOB_COMPLETION_INDEX)/{}", self.n),
            "--start-at",
            humantime::format_rfc3339_millis(self.start).to_string(),
            "--start-tolerance",
            format!("{}ms", self.tolerance.as_millis()),
            "--workers",
            self.cpu.to_string(),
            "--json",
            "-",
            "--quiet",
        ]);
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels()},
            "spec": {
                "completionMode": "Indexed",
                "completions": self.n,
                "parallelism": self.n,
                "backoffLimit": 0,
                "activeDeadlineSeconds": self.deadline.as_secs(),
                "ttlSecondsAfterFinished": 86_400,
                "podFailurePolicy": {"rules": [{
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "loadtest", "operator": "In", "values": [2, 3, 5]},
                }]},
                "template": {
                    "metadata": {"labels": self.labels()},
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 30,
                        "topologySpreadConstraints": [{
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": self.labels()},
                        }],
                        "containers": [{
                            "name": "loadtest",
                            "image": self.image,
                            "command": ["loadtest"],
                            "args": args,
                            // The Job controller sets it too; named here so
                            // that `$(JOB_COMPLETION_INDEX)` in the args
                            // visibly refers to it.
                            "env": [{
                                "name": "JOB_COMPLETION_INDEX",
                                "valueFrom": {"fieldRef": {
                                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']",
                                }},
                            }],
                            "resources": {"requests": resources, "limits": resources},
                            "volumeMounts": [{"name": "scenario", "mountPath": "/scenario", "readOnly": true}],
                        }],
                        "volumes": [{"name": "scenario", "configMap": {"name": self.name}}],
                    },
                },
            },
        })
    }
}

/// A Kubernetes object name (RFC 1123 label): lower-case letters, digits
/// and `-`, at most 63, from the scenario's name.
fn dns_label(name: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            _ if !out.ends_with('-') && !out.is_empty() => out.push('-'),
            _ => {}
        }
    }
    let label: String = format!("loadtest-{}", out.trim_end_matches('-'))
        .chars()
        .take(63)
        .collect();
    let label = label.trim_end_matches('-').to_string();
    if label == "loadtest" && out.is_empty() && !name.is_empty() {
        bail!("--name `{name}` has no letter or digit: give a name like checkout-api");
    }
    Ok(label)
}

/// Whether `url`'s host is this machine's loopback (the URL as `run`
/// parses it; one that does not parse is not).
fn is_loopback(url: &str) -> bool {
    let Ok(uri) = loadgen::net::parse_url(url) else {
        return false;
    };
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Block-style YAML of a JSON value. Every string is written as a JSON
/// string, which is a YAML double-quoted scalar: no value can be misread
/// as a number, a boolean or YAML syntax.
fn yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                let _ = write!(out, "{pad}{}:", key(k));
                child(x, indent, out);
            }
        }
        Value::Array(items) => {
            for x in items {
                let _ = write!(out, "{pad}-");
                match x {
                    Value::Object(m) if !m.is_empty() => {
                        // The first key on the dash's line, the rest below it.
                        let mut first = String::new();
                        yaml(x, indent + 2, &mut first);
                        out.push(' ');
                        out.push_str(first.trim_start());
                    }
                    _ => child(x, indent, out),
                }
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{scalar}");
        }
    }
}

/// A map value or list item after its key or dash.
fn child(x: &Value, indent: usize, out: &mut String) {
    match x {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml(x, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml(x, indent + 2, out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        scalar => {
            let _ = writeln!(out, " {scalar}");
        }
    }
}

/// A key plain when it is one, else quoted.
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'))
        && k.starts_with(|c: char| c.is_ascii_alphabetic());
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hosts() {
        assert_eq!(
            dns_label("Checkout API (staging)").unwrap(),
            "loadtest-checkout-api-staging"
        );
        assert!(dns_label(&"x".repeat(100)).unwrap().len() <= 63);
        assert!(dns_label("!!!").is_err());
        assert!(is_loopback("http://127.0.0.1:8080/"));
        assert!(is_loopback("http://[::1]:80/x"));
        assert!(is_loopback("https://user:pw@localhost/"));
        assert!(!is_loopback("http://checkout.staging.svc:8080/"));
    }

    #[test]
    fn yaml_lists_of_maps_keep_their_keys_together() {
        let mut out = String::new();
        yaml(&json!({"a": [{"b": 1, "c": [2]}], "d": {}}), 0, &mut out);
        assert_eq!(out, "a:\n  - b: 1\n    c:\n      - 2\nd: {}\n");
    }
}
