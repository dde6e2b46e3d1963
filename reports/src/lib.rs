//! The `report` stage (issue #5, not built yet): run results, forecasts and
//! plans in, charted HTML/Markdown reports and exported tables out. Nothing
//! is implemented here so far, and no command calls it; the crate exists so
//! the workspace has its final shape.
