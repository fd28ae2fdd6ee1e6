//! The result table: figures, ratios and counts, each with its goal when it
//! has one. Printed as Markdown (for the README) and written as JSON.

use serde_json::{Value, json};

pub struct Row {
    pub section: &'static str,
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub goal: Option<Goal>,
}

/// A goal of the issue: the figure must be at most / at least this.
#[derive(Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    Exactly(f64),
}

impl Goal {
    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtMost(g) => v <= g,
            Goal::AtLeast(g) => v >= g,
            Goal::Exactly(g) => (v - g).abs() < f64::EPSILON,
        }
    }

    fn text(self, unit: &str) -> String {
        let unit = if unit == "x" { "x" } else { unit };
        match self {
            Goal::AtMost(g) => format!("<= {g} {unit}"),
            Goal::AtLeast(g) => format!(">= {g} {unit}"),
            Goal::Exactly(g) => format!("= {g}"),
        }
    }
}

#[derive(Default)]
pub struct Table {
    pub rows: Vec<Row>,
}

impl Table {
    pub fn add(
        &mut self,
        section: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) {
        self.push(section, name.into(), value, unit, None);
    }

    pub fn goal(
        &mut self,
        section: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        goal: Goal,
    ) {
        self.push(section, name.into(), value, unit, Some(goal));
    }

    fn push(
        &mut self,
        section: &'static str,
        name: String,
        value: f64,
        unit: &'static str,
        goal: Option<Goal>,
    ) {
        let verdict = goal.map(|g| {
            if g.met(value) {
                " (goal met)"
            } else {
                " (goal MISSED)"
            }
        });
        eprintln!(
            "  {name}: {} {unit}{}",
            format_value(value),
            verdict.unwrap_or("")
        );
        self.rows.push(Row {
            section,
            name,
            value,
            unit,
            goal,
        });
    }

    /// The Markdown table.
    pub fn markdown(&self, machine: &str) -> String {
        let mut out =
            String::from("| part | figure | value | goal | met |\n|---|---|---:|---|---|\n");
        for r in &self.rows {
            let (goal, met) = match r.goal {
                Some(g) => (
                    g.text(r.unit),
                    if g.met(r.value) { "yes" } else { "**no**" },
                ),
                None => (String::new(), ""),
            };
            out.push_str(&format!(
                "| {} | {} | {} {} | {goal} | {met} |\n",
                r.section,
                r.name,
                format_value(r.value),
                r.unit
            ));
        }
        out.push_str(&format!("\nMachine: {machine}\n"));
        out
    }

    pub fn json(&self, machine: &str) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "part": r.section,
                    "figure": r.name,
                    "value": r.value,
                    "unit": r.unit,
                    "goal": r.goal.map(|g| g.text(r.unit)),
                    "met": r.goal.map(|g| g.met(r.value)),
                })
            })
            .collect();
        json!({ "machine": machine, "rows": rows })
    }
}

fn format_value(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e12) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// CPU model and the cores this process may use.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}
