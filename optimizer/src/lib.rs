//! The `optimize` stage (issue #4, not built yet): hourly demand and a
//! price catalog in, the cheapest instance mix, reserved / on-demand / spot
//! split and replica counts out. Nothing is implemented here so far, and no
//! command calls it; the crate exists so the workspace has its final shape.
