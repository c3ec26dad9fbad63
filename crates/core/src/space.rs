//! The search space: named parameters, their distributions, and the conditions under
//! which a parameter exists at all.
//!
//! A condition names an earlier parameter and the values it must take (`momentum`
//! exists only when `optimizer = "sgd"`). Parameters are kept in the order the study
//! file declares them and a condition may only look back, so a left-to-right pass
//! decides which parameters a partial assignment makes active.

use std::collections::BTreeMap;

use crate::distribution::{Distribution, ParamValue};

/// A trial's parameter values by name.
pub type Params = BTreeMap<String, ParamValue>;

/// "This parameter exists only when `parent` takes one of `values`."
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The name of the earlier parameter the condition looks at.
    pub parent: String,
    /// The values of `parent` under which the parameter exists (compared with
    /// [`ParamValue::same_as`]); never empty.
    pub values: Vec<ParamValue>,
}

/// One searchable parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDef {
    /// The name, as the study file writes it (letters, digits, `_`, `-` and `.`).
    pub name: String,
    /// The domain the parameter's values come from.
    pub distribution: Distribution,
    /// When the parameter exists; `None` means always.
    pub condition: Option<Condition>,
    /// Explicit points for the grid sampler (overrides the distribution's own list).
    pub grid: Option<Vec<ParamValue>>,
}

impl ParamDef {
    /// Whether the parameter exists given the values chosen so far.
    pub fn is_active(&self, chosen: &Params) -> bool {
        match &self.condition {
            None => true,
            Some(cond) => match chosen.get(&cond.parent) {
                Some(value) => cond.values.iter().any(|v| v.same_as(value)),
                None => false,
            },
        }
    }

    /// The values the grid sampler walks through, or `None` for a continuous range.
    pub fn grid_values(&self) -> Option<Vec<ParamValue>> {
        self.grid.clone().or_else(|| self.distribution.enumerate())
    }
}

/// An ordered set of parameters. Build it through the study file parser, which
/// validates names, domains and conditions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchSpace {
    /// The parameters in the order the study file declares them; names are unique.
    pub params: Vec<ParamDef>,
}

impl SearchSpace {
    /// The parameter of this name, if any.
    pub fn get(&self, name: &str) -> Option<&ParamDef> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Walks the parameters in order, asking `choose` for each active one.
    pub fn assign(&self, mut choose: impl FnMut(&ParamDef) -> ParamValue) -> Params {
        let mut chosen = Params::new();
        for param in &self.params {
            if param.is_active(&chosen) {
                let value = choose(param);
                chosen.insert(param.name.clone(), value);
            }
        }
        chosen
    }

    /// What changed between an existing study's space (`self`) and a new one, one
    /// line per difference; empty when the two are the same.
    pub fn diff(&self, new: &SearchSpace) -> Vec<String> {
        let mut lines = Vec::new();
        for old in &self.params {
            match new.get(&old.name) {
                None => lines.push(format!("parameter `{}` was removed", old.name)),
                Some(it) if it != old => lines.push(format!(
                    "parameter `{}` changed from {} to {}",
                    old.name,
                    describe_param(old),
                    describe_param(it)
                )),
                Some(_) => {}
            }
        }
        for it in &new.params {
            if self.get(&it.name).is_none() {
                lines.push(format!("parameter `{}` was added ({})", it.name, describe_param(it)));
            }
        }
        lines
    }
}

fn describe_param(param: &ParamDef) -> String {
    let mut it = param.distribution.describe();
    if let Some(cond) = &param.condition {
        let values: Vec<String> = cond.values.iter().map(|v| v.to_string()).collect();
        it.push_str(&format!(" when {} in [{}]", cond.parent, values.join(", ")));
    }
    if let Some(grid) = &param.grid {
        let values: Vec<String> = grid.iter().map(|v| v.to_string()).collect();
        it.push_str(&format!(" grid [{}]", values.join(", ")));
    }
    it
}
