//! The forecast-verification section: the calibrated model's predictions
//! next to measurements it was not fitted on.
use super::*;

pub(super) fn verify_section(v: &VerifyDoc) -> Section {
    let title = match v.name.as_str() {
        "" => "Forecast vs measurement".to_string(),
        name => format!("Forecast vs measurement: {name}"),
    };
    let mut s = Section::new("verify", title + &provenance(&v.started_at, &v.version));
    let judged: Vec<&VerifyCase> = v.cases.iter().filter(|c| c.role != Role::Fitted).collect();
    let missed = judged.iter().filter(|c| !c.ok).count();
    s.ok = missed == 0;
    s.verdict = if s.ok {
        format!(
            "The calibrated model predicted all {} measurements it was not fitted on within tolerance (p95 ±15%, throughput ±5%; saturation within one step)",
            judged.len()
        )
    } else {
        format!(
            "The calibrated model MISSED {missed} of {} measurements it was not fitted on: treat the forecast with caution",
            judged.len()
        )
    };
    if !v.note.is_empty() {
        s.next.push(v.note.clone());
    }
    let verdict = |c: &VerifyCase| match (c.role, c.ok) {
        (Role::Fitted, _) => "fitted on",
        (_, true) => "within",
        (_, false) => "MISSED",
    };
    s.tables.push(Table::new(
        "verify",
        "Predicted vs measured: the fitted steps, then those the model did not see",
        vec![
            text("case", v.cases.iter().map(|c| c.case.clone()).collect()),
            text(
                "role",
                v.cases
                    .iter()
                    .map(|c| c.role.as_str().to_string())
                    .collect(),
            ),
            num(
                "predicted p95 ms",
                v.cases.iter().map(|c| c.predicted_p95_ms).collect(),
            ),
            num(
                "measured p95 ms",
                v.cases.iter().map(|c| c.measured_p95_ms).collect(),
            ),
            num(
                "p95 error %",
                v.cases.iter().map(|c| 100.0 * c.p95_error).collect(),
            ),
            num(
                "predicted rps",
                v.cases.iter().map(|c| c.predicted_rps).collect(),
            ),
            num(
                "measured rps",
                v.cases.iter().map(|c| c.measured_rps).collect(),
            ),
            num(
                "rps error %",
                v.cases.iter().map(|c| 100.0 * c.rps_error).collect(),
            ),
            text(
                "verdict",
                v.cases.iter().map(|c| verdict(c).to_string()).collect(),
            ),
        ],
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(role: Role, ok: bool) -> VerifyCase {
        VerifyCase {
            case: format!("{} {ok}", role.as_str()),
            role,
            ok,
            ..VerifyCase::default()
        }
    }

    /// The steps the model was fitted on are shown but not judged; a miss
    /// on a step it did not see fails the section.
    #[test]
    fn fitted_steps_are_shown_not_judged() {
        let doc = |cases| VerifyDoc {
            cases,
            ..VerifyDoc::default()
        };
        let s = verify_section(&doc(vec![
            case(Role::Fitted, false),
            case(Role::HeldOut, true),
        ]));
        assert!(s.ok, "{}", s.verdict);
        assert!(s.verdict.contains("all 1 measurements"), "{}", s.verdict);
        let s = verify_section(&doc(vec![
            case(Role::Fitted, true),
            case(Role::Saturation, false),
        ]));
        assert!(!s.ok);
        assert!(s.verdict.contains("MISSED 1 of 1"), "{}", s.verdict);
    }
}
