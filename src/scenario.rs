//! The scenario file (TOML): what `run` sends, and the sections the later
//! stages read. Values are checked while parsing, so every problem comes
//! back with the file, line and column where it was written.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer};

/// A whole scenario file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub name: String,
    pub target: Option<Target>,
    pub load: Option<LoadSection>,
    #[serde(default)]
    pub requests: Vec<Request>,
    /// The simulator's sections (`simulate`).
    pub traffic: Option<simulator::model::Traffic>,
    pub service: Option<simulator::model::Service>,
    pub autoscaling: Option<simulator::model::Autoscaling>,
    pub simulation: Option<simulator::model::Simulation>,
    pub cost: Option<simulator::model::Cost>,
    pub slo: Option<simulator::model::Slo>,
    /// The cache tier (`[cache]`).
    pub cache: Option<simulator::model::Cache>,
    /// The optimizer's defaults (`optimize`, `plan`).
    pub optimize: Option<OptimizeSection>,
    /// The file it was read from and its text, for the places of the
    /// checks made after parsing.
    #[serde(skip)]
    pub source: Option<(std::path::PathBuf, String)>,
}

/// `[optimize]`: what `loadtest optimize --scenario` and `loadtest plan`
/// buy for the forecast. Flags override each key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizeSection {
    /// Price catalog CSV, relative to the scenario file.
    pub catalog: Option<String>,
    /// vCPU each replica requests.
    pub replica_vcpu: Option<f64>,
    /// Memory each replica requests, GiB.
    pub replica_memory_gib: Option<f64>,
    /// Largest spot share of each hour's vCPU.
    pub spot_max_share: Option<f64>,
    /// Losing the largest spot pool must leave demand covered.
    pub survive_spot_loss: Option<bool>,
    /// At most this many instance types.
    pub max_types: Option<usize>,
    /// Demand × (1 + headroom).
    pub headroom: Option<f64>,
    /// vCPU quota per hour.
    pub max_vcpu: Option<f64>,
    /// Instances of one type per hour.
    pub max_per_type: Option<u32>,
    /// Whether 3-year reservations may be bought.
    pub allow_3y: Option<bool>,
    /// `x86_64`, `arm64` or `any`.
    pub arch: Option<String>,
    /// Instance types never to use.
    pub exclude: Option<Vec<String>>,
    /// Only these families.
    pub families: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub url: Option<String>,
    /// Run against the built-in target, started in-process on a free
    /// loopback port, when no URL is given.
    pub builtin: Option<Builtin>,
    #[serde(default)]
    pub http2: bool,
    #[serde(default)]
    pub insecure: bool,
}

/// The built-in target's behaviour, as `loadtest serve` flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Builtin {
    #[serde(default = "eight")]
    pub workers: usize,
    #[serde(default = "default_service_time", deserialize_with = "service_time")]
    pub service_time: contracts::units::Dist,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default, deserialize_with = "stall")]
    pub stall: Option<loadgen::target::Stall>,
}

impl Default for Builtin {
    fn default() -> Self {
        Builtin {
            workers: 8,
            service_time: default_service_time(),
            error_rate: 0.0,
            stall: None,
        }
    }
}

fn eight() -> usize {
    8
}

fn default_service_time() -> contracts::units::Dist {
    contracts::units::Dist::Lognormal {
        mean_ms: 20.0,
        p95_ms: 60.0,
    }
}

fn service_time<'de, D: Deserializer<'de>>(d: D) -> Result<contracts::units::Dist, D::Error> {
    let s = String::deserialize(d)?;
    contracts::units::Dist::parse(&s).map_err(serde::de::Error::custom)
}

fn stall<'de, D: Deserializer<'de>>(d: D) -> Result<Option<loadgen::target::Stall>, D::Error> {
    let s = String::deserialize(d)?;
    loadgen::target::Stall::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    #[serde(default, deserialize_with = "positive")]
    pub rate: Option<f64>,
    pub connections: Option<usize>,
    pub max_connections: Option<usize>,
    #[serde(default, deserialize_with = "stages")]
    pub stages: Option<Vec<loadgen::Stage>>,
    #[serde(default, deserialize_with = "duration")]
    pub duration: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub think_time: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub coalesce: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub warmup: Option<Duration>,
    #[serde(default, deserialize_with = "thresholds")]
    pub thresholds: Vec<loadgen::Threshold>,
    #[serde(default)]
    pub abort_on_fail: bool,
    pub seed: Option<u64>,
    pub workers: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub name: Option<String>,
    /// A path joined to the target URL, or a full URL.
    #[serde(alias = "url")]
    pub path: Option<String>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    #[serde(default = "one")]
    pub weight: u32,
    /// `[requests.check]`: what a response must satisfy to count as ok.
    #[serde(default)]
    pub check: Option<CheckSection>,
}

/// `[requests.check]`: `status = "2xx,304"` (or `200`, or a list of
/// them), `body_contains = "text"`, `json = "data.id"` with optionally
/// `equals = VALUE`. Checked while parsing, so a mistake is placed.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawCheck")]
pub struct CheckSection(pub loadgen::check::Check);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    status: Option<StatusForm>,
    body_contains: Option<String>,
    json: Option<String>,
    equals: Option<toml::Value>,
}

/// `status = 200`, `"2xx,304"` or `[200, "3xx"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StatusForm {
    One(u16),
    Text(String),
    List(Vec<StatusItem>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StatusItem {
    Code(u16),
    Text(String),
}

impl TryFrom<RawCheck> for CheckSection {
    type Error = String;

    fn try_from(r: RawCheck) -> Result<Self, String> {
        let text = match r.status {
            None => None,
            Some(StatusForm::One(c)) => Some(c.to_string()),
            Some(StatusForm::Text(t)) => Some(t),
            Some(StatusForm::List(items)) => Some(
                items
                    .into_iter()
                    .map(|i| match i {
                        StatusItem::Code(c) => c.to_string(),
                        StatusItem::Text(t) => t,
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        };
        let status = match text {
            Some(t) => Some((
                t.clone(),
                loadgen::check::StatusSet::parse(&t).map_err(|e| format!("check.status: {e}"))?,
            )),
            None => None,
        };
        if r.equals.is_some() && r.json.is_none() {
            return Err(
                "check.equals needs check.json, the field it compares (e.g. json = \"data.id\")"
                    .into(),
            );
        }
        let json = match r.json {
            Some(path) => {
                let equals = r
                    .equals
                    .map(serde_json::to_value)
                    .transpose()
                    .map_err(|e| format!("check.equals: {e}"))?;
                Some(
                    loadgen::check::JsonCheck::new(&path, equals)
                        .map_err(|e| format!("check.json: {e}"))?,
                )
            }
            None => None,
        };
        if matches!(&r.body_contains, Some(b) if b.is_empty()) {
            return Err("check.body_contains is empty: write the text the body must contain, or leave it out".into());
        }
        Ok(CheckSection(loadgen::check::Check {
            status,
            body_contains: r.body_contains,
            json,
        }))
    }
}

fn one() -> u32 {
    1
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    loadgen::parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    if !(v.is_finite() && v > 0.0) {
        return Err(serde::de::Error::custom(format!("must be > 0, got {v}")));
    }
    Ok(Some(v))
}

fn thresholds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<loadgen::Threshold>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|t| loadgen::parse_threshold(t).map_err(serde::de::Error::custom))
        .collect()
}

/// `stages = "30s:100,1m:1000"` or `stages = [{ duration = "30s", target = 100 }]`.
fn stages<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<loadgen::Stage>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        List(Vec<StageRow>),
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StageRow {
        duration: String,
        target: f64,
    }
    match Form::deserialize(d)? {
        Form::Text(t) => loadgen::parse_stages(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Form::List(rows) => {
            let text: Vec<String> = rows
                .iter()
                .map(|r| format!("{}:{}", r.duration, r.target))
                .collect();
            loadgen::parse_stages(&text.join(","))
                .map(Some)
                .map_err(serde::de::Error::custom)
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let ok = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            // Valid up to here by construction.
            let (line, col) = line_col(std::str::from_utf8(ok).unwrap_or(""), ok.len());
            anyhow::anyhow!(
                "{}:{line}:{col}: not UTF-8 text: save the scenario as UTF-8",
                path.display()
            )
        })?;
        let mut scn = Self::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
        scn.source = Some((path.to_path_buf(), text));
        Ok(scn)
    }

    /// `file:line:column: msg` for a check that names its place as
    /// `[section] key …`: the key's line in that section, else the
    /// section's header; `file: msg` when neither is in the file.
    pub fn placed(&self, msg: &str) -> String {
        let Some((path, text)) = &self.source else {
            return msg.to_string();
        };
        match place(text, msg) {
            Some((line, col)) => format!("{}:{line}:{col}: {msg}", path.display()),
            None => format!("{}: {msg}", path.display()),
        }
    }

    /// Parses scenario text; the error starts with `line:column:`.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            format!(
                "{line}:{col}: {}",
                crate::cut(&e.message().trim().replace('\n', " "), 300)
            )
        })
    }
}

/// Every parse error of a scenario that has any, not only the first: each
/// top-level section is parsed alone, the others blanked with their line
/// breaks kept, so every error keeps its line and column. An error is kept
/// when it is in the section being parsed (or before the first one).
pub fn parse_errors(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut owner: Vec<String> = Vec::with_capacity(lines.len());
    let mut current = String::new();
    for l in &lines {
        if let Some(h) = table_header(l) {
            let top = h.split('.').next().unwrap_or("");
            current = top.trim().trim_matches('"').to_string();
        }
        owner.push(current.clone());
    }
    let mut groups: Vec<&String> = Vec::new();
    for o in &owner {
        if !groups.contains(&o) {
            groups.push(o);
        }
    }
    let mut errors: Vec<String> = Vec::new();
    for g in groups {
        let masked: String = lines
            .iter()
            .zip(&owner)
            .map(|(l, o)| {
                if o == g || o.is_empty() {
                    (*l).to_string()
                } else {
                    l.chars().map(|c| if c == '\n' { c } else { ' ' }).collect()
                }
            })
            .collect();
        let Err(e) = Scenario::parse(&masked) else {
            continue;
        };
        let line: usize = e
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let here = owner.get(line - 1).is_none_or(|o| o == g || o.is_empty());
        if here && !errors.contains(&e) {
            errors.push(e);
        }
    }
    if errors.is_empty()
        && let Err(e) = Scenario::parse(text)
    {
        errors.push(e);
    }
    errors
}

/// The name inside a table header line (`[a.b]`, `[[a]]`), if `line` is one.
fn table_header(line: &str) -> Option<&str> {
    let h = line.trim_start().strip_prefix('[')?;
    Some(
        h.trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim(),
    )
}

/// Where `[section] key …` in a check's message is written in `text`.
pub fn place(text: &str, msg: &str) -> Option<(usize, usize)> {
    let rest = msg.strip_prefix('[')?;
    let (section, rest) = rest.split_once("] ")?;
    let key: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut header = None;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if let Some(h) = table_header(line) {
            current = h.to_string();
            if current == section && header.is_none() {
                header = Some((i + 1, indent + 1));
            }
            continue;
        }
        if current == section
            && !key.is_empty()
            && let Some(after) = t.strip_prefix(key.as_str())
            && after.trim_start().starts_with(['=', '.'])
        {
            return Some((i + 1, indent + 1));
        }
    }
    header
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Expands `${VAR}` (or `${VAR:-default}`) from the environment; an unset variable is an error
/// that names it (a silently empty Authorization header would be a lie).
pub fn expand_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("unclosed `${{` in `{value}`")
        };
        let (name, default) = match after[..end].split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (&after[..end], None),
        };
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => bail!(
                "environment variable `{name}` is not set: export it, write ${{{name}:-default}}, or remove it"
            ),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_run_scenario_parses() {
        let s = Scenario::parse(
            r#"
name = "checkout"
[target]
url = "http://127.0.0.1:8080/"
[load]
rate = 1000
duration = "30s"
stages = [{ duration = "10s", target = 100 }, { duration = "20s", target = 300 }]
thresholds = ["p95<200ms", "error_rate<1%"]
[[requests]]
path = "/cart"
method = "POST"
headers = { Authorization = "Bearer ${TOKEN}" }
weight = 3
[traffic]
rate = 90.0
[service]
replicas = 2
service_time = { dist = "exponential", mean_ms = 20.0 }
"#,
        )
        .unwrap();
        let load = s.load.unwrap();
        assert_eq!(load.rate, Some(1000.0));
        assert_eq!(load.duration, Some(Duration::from_secs(30)));
        assert_eq!(load.stages.unwrap().len(), 2);
        assert_eq!(load.thresholds.len(), 2);
        assert_eq!(s.requests[0].weight, 3);
        assert!(s.traffic.is_some());
        let s =
            Scenario::parse("[target]\nbuiltin = { workers = 4, service_time = \"exp:5ms\" }\n")
                .unwrap();
        let b = s.target.unwrap().builtin.unwrap();
        assert_eq!(b.workers, 4);
        assert_eq!(
            b.service_time,
            contracts::units::Dist::Exponential { mean_ms: 5.0 }
        );
        let e = Scenario::parse("[target]\nbuiltin = { stall = \"5s/1s\" }\n").unwrap_err();
        assert!(e.starts_with("2:21:") && e.contains("bad stall"), "{e}");
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = Scenario::parse("[load]\nrate = 10\nduration = \"ten\"\n").unwrap_err();
        assert!(e.starts_with("3:12:"), "{e}");
        assert!(e.contains("bad duration `ten`"), "{e}");
        let e = Scenario::parse("[load]\nrat = 10\n").unwrap_err();
        assert!(
            e.starts_with("2:1:") && e.contains("unknown field `rat`"),
            "{e}"
        );
        let e = Scenario::parse("[load]\nrate = -5\n").unwrap_err();
        assert!(e.starts_with("2:8:") && e.contains("must be > 0"), "{e}");
        let e = Scenario::parse("[load]\nthresholds = [\"p95 < soon\"]\n").unwrap_err();
        assert!(e.contains("bad threshold"), "{e}");
    }

    #[test]
    fn simulator_sections_report_their_place() {
        let e = Scenario::parse("[autoscaling]\npolicy = \"hpa\"\nmin = 2\nmax = 10\ntarget_cpu = 0.7\nsync_period = \"soon\"\n").unwrap_err();
        // Inside a table tagged by `policy`, serde buffers the table, so the
        // place is the table's own; the message still names the value.
        assert!(
            e.starts_with("1:1:") && e.contains("bad duration `soon`"),
            "{e}"
        );
        let e = Scenario::parse(
            "[service]\nreplicas = 2\nservice_time = { dist = \"gamma\", mean_ms = 3.0 }\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("3:25:") && e.contains("unknown variant `gamma`"),
            "{e}"
        );
        let e = Scenario::parse("[autoscaling]\npolicy = \"magic\"\n").unwrap_err();
        assert!(e.contains("unknown variant `magic`"), "{e}");
    }

    #[test]
    fn env_expansion() {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(expand_env("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cret");
        assert_eq!(expand_env("plain", env).unwrap(), "plain");
        assert_eq!(expand_env("x${NOPE:-dflt}y", env).unwrap(), "xdflty");
        assert_eq!(expand_env("${TOKEN:-dflt}", env).unwrap(), "s3cret");
        assert_eq!(expand_env("x${NOPE:-dflt}y", env).unwrap(), "xdflty");
        assert_eq!(expand_env("${TOKEN:-dflt}", env).unwrap(), "s3cret");
        let e = expand_env("Bearer ${MISSING}", env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`MISSING` is not set"), "{e}");
        assert!(expand_env("${TOKEN", env).is_err());
    }
}
