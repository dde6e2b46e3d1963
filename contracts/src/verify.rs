//! `loadtest plan --verify`: the calibrated model's predictions next to
//! measurements it was not fitted on. The binary builds it; `report` reads
//! it.

use serde::{Deserialize, Serialize};

crate::tag!(
    VerifyTag,
    "verify",
    "`kind = \"verify\"`: the document is a forecast checked against measurements."
);

/// What a case is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A step the model was chosen on: shown, not judged.
    Fitted,
    /// Predicted from the fit and judged against its tolerance (files from
    /// before roles held only these).
    #[default]
    HeldOut,
    /// A step at or past the knee: judged on the saturation verdict.
    Saturation,
}

impl Role {
    /// The name used in the JSON and the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Fitted => "fitted",
            Role::HeldOut => "held_out",
            Role::Saturation => "saturation",
        }
    }
}

/// A forecast checked against one measurement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// What was checked, in words.
    pub case: String,
    /// Replicas.
    pub replicas: u32,
    /// Offered requests/s.
    pub offered_rps: f64,
    /// Fraction of the replicas' capacity.
    pub level: f64,
    /// What the case is for.
    #[serde(default)]
    pub role: Role,
    /// Predicted p95, ms.
    pub predicted_p95_ms: f64,
    /// Measured p95, ms.
    pub measured_p95_ms: f64,
    /// (predicted − measured) / measured.
    pub p95_error: f64,
    /// Predicted goodput, requests/s.
    pub predicted_rps: f64,
    /// Measured goodput, requests/s.
    pub measured_rps: f64,
    /// (predicted − measured) / measured.
    pub rps_error: f64,
    /// Predicted: falling behind or over the SLO.
    pub predicted_saturated: bool,
    /// Measured: falling behind or over the SLO.
    pub measured_saturated: bool,
    /// Within tolerance (held-out and multi-replica cases), or the
    /// saturation verdict agrees within one step (saturation cases).
    /// Fitted cases are shown, not judged.
    pub ok: bool,
}

/// `verify.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verify {
    /// Kind of document.
    pub kind: VerifyTag,
    /// Scenario name.
    #[serde(default)]
    pub name: String,
    /// When the check started (UTC, RFC 3339); set by the binary.
    #[serde(default)]
    pub started_at: String,
    /// Wall-clock seconds the check took.
    #[serde(default)]
    pub duration_s: f64,
    /// The version of the tool that made it; set by the binary.
    #[serde(default)]
    pub version: String,
    /// How the check was made.
    pub note: String,
    /// Every case.
    pub cases: Vec<Case>,
}

impl Verify {
    /// The judged cases that missed.
    pub fn misses(&self) -> impl Iterator<Item = &Case> {
        self.cases
            .iter()
            .filter(|c| c.role != Role::Fitted && !c.ok)
    }
}
