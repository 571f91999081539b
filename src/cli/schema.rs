//! `poolpilot schema`: the policy JSON Schema, generated from the types.

pub fn run() -> anyhow::Result<i32> {
    outln!(
        "{}",
        serde_json::to_string_pretty(&crate::policy::json_schema())?
    );
    Ok(0)
}
