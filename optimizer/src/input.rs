//! Reading the optimizer's inputs: the price catalog and the hourly demand
//! (CSV, or a `loadtest simulate` forecast turned into demand through each
//! service's per-replica requests). Every error names the file, line and
//! column.
use contracts::forecast::{Forecast, Hourly};
use serde::{Deserialize, Serialize};

use crate::Error;

/// One instance type with its hourly prices (USD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceType {
    /// e.g. `aws`.
    pub provider: String,
    /// e.g. `us-east-1`.
    pub region: String,
    /// e.g. `m6i.xlarge`.
    pub instance_type: String,
    /// vCPUs.
    pub vcpu: f64,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// On-demand price per hour.
    pub on_demand_hourly: f64,
    /// Effective hourly price of a 1-year reservation (none: not offered).
    pub reserved_1y_hourly: Option<f64>,
    /// Effective hourly price of a 3-year reservation.
    pub reserved_3y_hourly: Option<f64>,
    /// Typical spot price per hour.
    pub spot_hourly: Option<f64>,
    /// Interruption frequency, as a fraction per month (informational).
    pub spot_interruption: Option<f64>,
    /// `x86_64` or `arm64`, from the catalog's optional `arch` column;
    /// `None`: told by the type's name ([`crate::select::arch_of`]).
    #[serde(default)]
    pub arch: Option<String>,
}

/// A catalog: instance types and the comment lines of its header (date,
/// source, "approximate").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// The `#` lines at the top of the file, without the `#`.
    pub notes: Vec<String>,
    /// The types.
    pub types: Vec<InstanceType>,
}

/// Demand for one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    /// vCPUs needed.
    pub vcpu: f64,
    /// GiB of memory needed.
    pub memory_gib: f64,
}

const CATALOG_COLUMNS: [&str; 10] = [
    "provider",
    "region",
    "instance_type",
    "vcpu",
    "memory_gib",
    "on_demand_hourly",
    "reserved_1y_hourly",
    "reserved_3y_hourly",
    "spot_hourly",
    "spot_interruption",
];

/// A CSV record: the 1-based line, and each field with its 1-based column.
struct Record<'a> {
    line: usize,
    fields: Vec<(usize, &'a str)>,
}

/// Splits simple CSV (no quoted commas: none of our fields need them).
/// Blank lines and `#` lines are skipped; `#` lines before the header are
/// returned as notes.
fn records(text: &str) -> (Vec<String>, Vec<Record<'_>>) {
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(note) = line.trim_start().strip_prefix('#') {
            if out.is_empty() {
                notes.push(note.trim().to_string());
            }
            continue;
        }
        let mut fields = Vec::new();
        let mut col = 1;
        for f in line.split(',') {
            fields.push((col, f.trim()));
            col += f.chars().count() + 1;
        }
        out.push(Record {
            line: i + 1,
            fields,
        });
    }
    (notes, out)
}

fn at(file: &str, line: usize, col: usize, msg: impl std::fmt::Display) -> Error {
    Error::Input(format!("{file}:{line}:{col}: {msg}"))
}

fn number(
    file: &str,
    r: &Record,
    i: usize,
    name: &str,
    optional: bool,
) -> Result<Option<f64>, Error> {
    let (col, s) = r.fields[i];
    if s.is_empty() {
        if optional {
            return Ok(None);
        }
        return Err(at(
            file,
            r.line,
            col,
            format!("`{name}` is empty; give a number"),
        ));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(at(
            file,
            r.line,
            col,
            format!("`{name}` = `{s}` is not a non-negative number"),
        )),
    }
}

/// Parses a catalog CSV with the columns in DESIGN.md (any order, header
/// required). Empty price cells mean "not offered".
pub fn parse_catalog(file: &str, text: &str) -> Result<Catalog, Error> {
    let (notes, recs) = records(text);
    let Some((header, rows)) = recs.split_first() else {
        return Err(at(
            file,
            1,
            1,
            "empty catalog; expected a header line with the columns provider,region,instance_type,vcpu,memory_gib,on_demand_hourly,reserved_1y_hourly,reserved_3y_hourly,spot_hourly,spot_interruption",
        ));
    };
    let (idx, arch) = catalog_columns(file, header)?;
    let mut types: Vec<InstanceType> = Vec::new();
    for r in rows {
        let mut t = instance_type(file, header, r, &idx)?;
        if let Some(i) = arch.filter(|&i| i < r.fields.len()) {
            let (col, v) = r.fields[i];
            t.arch = match v.to_ascii_lowercase().as_str() {
                "" => None,
                "x86_64" | "amd64" | "x86" => Some("x86_64".into()),
                "arm64" | "aarch64" | "arm" => Some("arm64".into()),
                _ => {
                    return Err(at(
                        file,
                        r.line,
                        col,
                        format!(
                            "`arch` = `{v}`: write x86_64 or arm64, or leave it empty to tell by the type's name"
                        ),
                    ));
                }
            };
        }
        if types
            .iter()
            .any(|o| o.instance_type == t.instance_type && o.region == t.region)
        {
            return Err(at(
                file,
                r.line,
                r.fields[idx[2]].0,
                format!("`{}` is listed twice", t.instance_type),
            ));
        }
        types.push(t);
    }
    if types.is_empty() {
        return Err(at(
            file,
            header.line,
            1,
            "the catalog lists no instance types",
        ));
    }
    Ok(Catalog { notes, types })
}

/// Where each of [`CATALOG_COLUMNS`] is in the header, and the optional
/// `arch` column.
fn catalog_columns(file: &str, header: &Record) -> Result<([usize; 10], Option<usize>), Error> {
    let mut idx = [usize::MAX; 10];
    let mut arch = None;
    for (i, &(col, name)) in header.fields.iter().enumerate() {
        match CATALOG_COLUMNS.iter().position(|c| *c == name) {
            Some(k) => idx[k] = i,
            None if name == "arch" => arch = Some(i),
            None => {
                // Quoted only when it looks like a column name: the path
                // may name any file, and its first line is not ours to show.
                let shown = if name.len() <= 40
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    format!("unknown column `{name}`")
                } else {
                    "not a catalog header".to_string()
                };
                return Err(at(
                    file,
                    header.line,
                    col,
                    format!(
                        "{shown}; the columns are {} (and optionally arch)",
                        CATALOG_COLUMNS.join(",")
                    ),
                ));
            }
        }
    }
    if let Some(k) = idx.iter().position(|&i| i == usize::MAX) {
        return Err(at(
            file,
            header.line,
            1,
            format!("missing column `{}`", CATALOG_COLUMNS[k]),
        ));
    }
    Ok((idx, arch))
}

/// One row of the catalog, checked.
fn instance_type(
    file: &str,
    header: &Record,
    r: &Record,
    idx: &[usize; 10],
) -> Result<InstanceType, Error> {
    if r.fields.len() != header.fields.len() {
        let col = r.fields.last().map(|f| f.0).unwrap_or(1);
        return Err(at(
            file,
            r.line,
            col,
            format!(
                "{} fields, the header has {}",
                r.fields.len(),
                header.fields.len()
            ),
        ));
    }
    let text = |k: usize| r.fields[idx[k]].1.to_string();
    let num = |k: usize, opt: bool| number(file, r, idx[k], CATALOG_COLUMNS[k], opt);
    let t = InstanceType {
        provider: text(0),
        region: text(1),
        instance_type: text(2),
        vcpu: num(3, false)?.unwrap_or(0.0),
        memory_gib: num(4, false)?.unwrap_or(0.0),
        on_demand_hourly: num(5, false)?.unwrap_or(0.0),
        reserved_1y_hourly: num(6, true)?,
        reserved_3y_hourly: num(7, true)?,
        spot_hourly: num(8, true)?,
        spot_interruption: num(9, true)?,
        arch: None,
    };
    if t.instance_type.is_empty() {
        return Err(at(
            file,
            r.line,
            r.fields[idx[2]].0,
            "`instance_type` is empty",
        ));
    }
    for (k, v) in [(3, t.vcpu), (4, t.memory_gib), (5, t.on_demand_hourly)] {
        if v <= 0.0 {
            return Err(at(
                file,
                r.line,
                r.fields[idx[k]].0,
                format!("`{}` must be above 0", CATALOG_COLUMNS[k]),
            ));
        }
    }
    // No cloud sells less than a quarter vCPU or half a GiB, or more
    // than a few thousand of either: outside these a value is in the
    // wrong unit (millicores, MiB), and it would size the model by it.
    for (k, v, lo, hi) in [(3, t.vcpu, 0.1, 4096.0), (4, t.memory_gib, 0.1, 65536.0)] {
        if !(lo..=hi).contains(&v) {
            return Err(at(
                file,
                r.line,
                r.fields[idx[k]].0,
                format!(
                    "`{}` is {v}, outside {lo}..{hi}: give vCPUs and GiB per instance",
                    CATALOG_COLUMNS[k]
                ),
            ));
        }
    }
    Ok(t)
}

/// Parses `hour,vcpu,memory_gib`, one row per hour in order from 0.
pub fn parse_demand(file: &str, text: &str) -> Result<Vec<Demand>, Error> {
    let (_, recs) = records(text);
    let Some((header, rows)) = recs.split_first() else {
        return Err(at(
            file,
            1,
            1,
            "empty demand file; expected the header hour,vcpu,memory_gib",
        ));
    };
    let names: Vec<&str> = header.fields.iter().map(|f| f.1).collect();
    if names != ["hour", "vcpu", "memory_gib"] {
        return Err(at(
            file,
            header.line,
            1,
            "the header must be exactly hour,vcpu,memory_gib",
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if r.fields.len() != 3 {
            let col = r.fields.last().map(|f| f.0).unwrap_or(1);
            return Err(at(
                file,
                r.line,
                col,
                format!("{} fields; expected hour,vcpu,memory_gib", r.fields.len()),
            ));
        }
        let (col, h) = r.fields[0];
        if h.parse::<usize>().ok() != Some(out.len()) {
            return Err(at(
                file,
                r.line,
                col,
                format!(
                    "hour `{h}`: expected {} (one row per hour, in order from 0)",
                    out.len()
                ),
            ));
        }
        out.push(Demand {
            vcpu: number(file, r, 1, "vcpu", false)?.unwrap_or(0.0),
            memory_gib: number(file, r, 2, "memory_gib", false)?.unwrap_or(0.0),
        });
    }
    if out.is_empty() {
        return Err(at(file, header.line, 1, "no hours after the header"));
    }
    Ok(out)
}

/// A service: its replicas per hour and what each replica requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Name.
    pub name: String,
    /// Replicas the forecast needs each hour (before the N+1 spare).
    pub replicas: Vec<u32>,
    /// vCPU requested per replica.
    pub replica_vcpu: f64,
    /// Memory requested per replica, GiB.
    pub replica_memory_gib: f64,
}

/// Reads a forecast JSON into a service.
pub fn parse_forecast(
    file: &str,
    text: &str,
    replica_vcpu: f64,
    replica_memory_gib: f64,
) -> Result<(Service, Hourly), Error> {
    let f: Forecast = contracts::parse(text)
        .map_err(|e| Error::Input(format!("{file}:{e}: not a forecast JSON")))?;
    forecast_service(file, &f, replica_vcpu, replica_memory_gib)
}

/// A forecast as a service: its hourly replicas, each requesting
/// `replica_vcpu` and `replica_memory_gib`. `file` names where it came
/// from in the errors.
pub fn forecast_service(
    file: &str,
    f: &Forecast,
    replica_vcpu: f64,
    replica_memory_gib: f64,
) -> Result<(Service, Hourly), Error> {
    let Some(h) = &f.hourly else {
        return Err(Error::Input(format!(
            "{file}: the forecast has no `hourly` series; it comes from a growth scenario \
             ([traffic] users = ...) run with `loadtest simulate --json`"
        )));
    };
    if h.replicas.is_empty() {
        return Err(Error::Input(format!("{file}: `hourly.replicas` is empty")));
    }
    Ok((
        Service {
            name: if f.name.is_empty() {
                "service".into()
            } else {
                f.name.clone()
            },
            replicas: h.replicas.clone(),
            replica_vcpu,
            replica_memory_gib,
        },
        h.clone(),
    ))
}

/// Demand from services: each hour, (replicas + spare) × the per-replica
/// requests, summed over services. `spare` is 1 for N+1.
pub fn services_demand(services: &[Service], spare: u32) -> Vec<Demand> {
    let hours = services.iter().map(|s| s.replicas.len()).max().unwrap_or(0);
    (0..hours)
        .map(|h| {
            let mut d = Demand::default();
            for s in services {
                let n = s
                    .replicas
                    .get(h)
                    .or(s.replicas.last())
                    .copied()
                    .unwrap_or(0)
                    + spare;
                d.vcpu += n as f64 * s.replica_vcpu;
                d.memory_gib += n as f64 * s.replica_memory_gib;
            }
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAT: &str = "# AWS us-east-1, approximate list prices, 2026-11\n\
provider,region,instance_type,vcpu,memory_gib,on_demand_hourly,reserved_1y_hourly,reserved_3y_hourly,spot_hourly,spot_interruption\n\
aws,us-east-1,m6i.large,2,8,0.096,0.060,0.041,0.035,0.05\n\
aws,us-east-1,t3.large,2,8,0.0832,0.052,,,\n";

    #[test]
    fn catalog_reads_notes_and_optional_prices() {
        let c = parse_catalog("c.csv", CAT).unwrap();
        assert_eq!(
            c.notes,
            vec!["AWS us-east-1, approximate list prices, 2026-11"]
        );
        assert_eq!(c.types.len(), 2);
        assert_eq!(c.types[1].spot_hourly, None);
        assert_eq!(c.types[0].reserved_3y_hourly, Some(0.041));
    }

    #[test]
    fn catalog_errors_name_line_and_column() {
        let bad = CAT.replace("0.096", "cheap");
        let e = parse_catalog("c.csv", &bad).unwrap_err().to_string();
        assert!(
            e.starts_with("c.csv:3:29: `on_demand_hourly` = `cheap`"),
            "{e}"
        );
        let bad = CAT.replace("spot_interruption", "spot_risk");
        let e = parse_catalog("c.csv", &bad).unwrap_err().to_string();
        assert!(
            e.starts_with("c.csv:2:") && e.contains("unknown column `spot_risk`"),
            "{e}"
        );
    }

    #[test]
    fn demand_errors_name_line_and_column() {
        let e = parse_demand("d.csv", "hour,vcpu,memory_gib\n0,4,8\n1,x,8\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "d.csv:3:3: `vcpu` = `x` is not a non-negative number");
        let e = parse_demand("d.csv", "hour,vcpu,memory_gib\n0,4,8\n2,4,8\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.csv:3:1: hour `2`: expected 1"), "{e}");
    }

    #[test]
    fn services_demand_adds_the_spare_replica() {
        let s = Service {
            name: "api".into(),
            replicas: vec![2, 5],
            replica_vcpu: 2.0,
            replica_memory_gib: 4.0,
        };
        let d = services_demand(&[s], 1);
        assert_eq!(
            d[0],
            Demand {
                vcpu: 6.0,
                memory_gib: 12.0
            }
        );
        assert_eq!(
            d[1],
            Demand {
                vcpu: 12.0,
                memory_gib: 24.0
            }
        );
    }
}
