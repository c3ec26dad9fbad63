//! The study file's shape, checked before serde reads it, and serde's messages put in
//! the file's own terms.
//!
//! serde tells a wrong shape in Rust's terms ("expected struct RawParam with 7
//! elements", "wanted string or table", "u64 value was too large"). A first pass over
//! the parsed TOML document refuses what serde would tell badly: a section that is not
//! a table, a parameter that is not a table, a date or time anywhere, a named choice
//! (`direction`, `kind`, `good_weights`) that is not a string. What serde still
//! refuses goes through [`plain`], which words its message as "expected X, found Y"
//! with TOML's names for values.

use serde::Deserialize;
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    Ctx, RawDirection, RawGoodWeights, RawObjectiveKind, RawPrunerKind, RawSamplerKind, SpecError,
};

/// The sections of a study file; each must be a table.
const SECTIONS: [&str; 8] =
    ["study", "sampler", "pruner", "early_stopping", "objective", "space", "nightly", "compress"];

/// What a parameter of `[space]` looks like, for messages.
pub(super) const PARAM_EXAMPLE: &str = "a table such as `{ float = [0.0, 1.0] }`, \
     `{ int = [1, 8] }` or `{ choice = [\"a\", \"b\"] }`";

impl Ctx<'_> {
    /// Refuses the shapes serde would tell in its own terms; see the module docs.
    pub(super) fn check_shapes(&self, doc: &DeTable<'_>) -> Result<(), SpecError> {
        for (key, value) in doc {
            let section: &str = key.get_ref();
            let Some(table) = value.get_ref().as_table() else {
                if SECTIONS.contains(&section) {
                    return Err(self.error(
                        value.span(),
                        format!("[{section}]"),
                        format!(
                            "`{section}` is a section: write `[{section}]` on a line of its own \
                             and its settings below it, found {}",
                            self.found(value)
                        ),
                    ));
                }
                continue;
            };
            for (name, setting) in table {
                let name: &str = name.get_ref();
                let field = format!("[{section}].{name}");
                self.no_datetime(&field, setting)?;
                if section == "space" && !setting.get_ref().is_table() {
                    return Err(self.error(
                        setting.span(),
                        field,
                        format!("a parameter is {PARAM_EXAMPLE}, found {}", self.found(setting)),
                    ));
                }
                if let Some(choices) = named_choices(section, name)
                    && !setting.get_ref().is_str()
                {
                    return Err(self.error(
                        setting.span(),
                        field,
                        format!("expected {choices}, found {}", self.found(setting)),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Refuses a date or time anywhere in `value`: no setting takes one.
    fn no_datetime(&self, field: &str, value: &Spanned<DeValue<'_>>) -> Result<(), SpecError> {
        match value.get_ref() {
            DeValue::Datetime(_) => Err(self.error(
                value.span(),
                field,
                format!(
                    "no setting takes a date or time, found {}; write a number or a quoted string",
                    self.found(value)
                ),
            )),
            DeValue::Array(items) => items.iter().try_for_each(|it| self.no_datetime(field, it)),
            DeValue::Table(table) => {
                table.iter().try_for_each(|(_, it)| self.no_datetime(field, it))
            }
            _ => Ok(()),
        }
    }

    /// "a list `[\"tpe\"]`": the kind of value and the text the file wrote for it.
    fn found(&self, value: &Spanned<DeValue<'_>>) -> String {
        let kind = match value.get_ref() {
            DeValue::String(_) => "a string",
            DeValue::Integer(_) => "an integer",
            DeValue::Float(_) => "a number",
            DeValue::Boolean(_) => "a boolean",
            DeValue::Datetime(_) => "a date",
            DeValue::Array(_) => "a list",
            DeValue::Table(_) => "a table",
        };
        let text = self.text.get(value.span()).unwrap_or("").trim();
        let shown: String = text.chars().take(40).collect();
        let more = if shown.len() < text.len() { "..." } else { "" };
        if shown.is_empty() || shown.contains('\n') {
            kind.to_owned()
        } else {
            format!("{kind} `{shown}{more}`")
        }
    }
}

/// The names a named-choice setting takes ("`minimize` or `maximize`"), or `None` for
/// other settings. The names come from the types serde reads, so they never drift.
fn named_choices(section: &str, name: &str) -> Option<String> {
    match (section, name) {
        ("study" | "early_stopping", "direction") => Some(choices_of::<RawDirection>()),
        ("sampler", "kind") => Some(choices_of::<RawSamplerKind>()),
        ("sampler", "good_weights") => Some(choices_of::<RawGoodWeights>()),
        ("pruner", "kind") => Some(choices_of::<RawPrunerKind>()),
        ("objective", "kind") => Some(choices_of::<RawObjectiveKind>()),
        _ => None,
    }
}

/// The variants of a string enum, as serde lists them for an unknown one.
fn choices_of<'de, T: Deserialize<'de>>() -> String {
    let err = match T::deserialize(StrDeserializer::<ValueError>::new("")) {
        Ok(_) => return "a name".to_owned(),
        Err(err) => err.to_string(),
    };
    match err.split_once("expected ") {
        Some((_, names)) => names.to_owned(),
        None => "a name".to_owned(),
    }
}

/// serde's message in the study file's terms: "expected X, found Y" with TOML's names
/// for values (list, table, integer) and no Rust type names.
pub(super) fn plain(message: &str) -> String {
    if message.contains("$__toml_private_datetime") {
        return "no setting takes a date or time; write a number or a quoted string".to_owned();
    }
    if message.contains("u64 value was too large") || message.contains("as i128") {
        return too_large();
    }
    let rest =
        message.strip_prefix("invalid type: ").or_else(|| message.strip_prefix("invalid value: "));
    if let Some((found, expected)) = rest.and_then(|it| it.split_once(", expected ")) {
        if let Some(number) = found.strip_prefix("integer `").and_then(|it| it.strip_suffix('`'))
            && number.parse::<i64>().is_err()
        {
            return too_large();
        }
        let expected = match expected {
            "u64" | "a whole number" => "a whole number (0 or more)",
            "i64" | "an integer" => "an integer",
            "f64" | "a number" => "a number",
            "a sequence" => "a list such as `[1, 2]`",
            "a boolean" => "`true` or `false`",
            "struct RawParam" => PARAM_EXAMPLE,
            other if other.starts_with("struct ") => "a table",
            other => other,
        };
        return format!("expected {expected}, found {}", found_value(found));
    }
    message
        .replace("expected i64", "expected an integer")
        .replace("expected u64", "expected a whole number (0 or more)")
        .replace("expected f64", "expected a number")
}

fn too_large() -> String {
    format!("integers range from {} to {}; this one is out of range", i64::MIN, i64::MAX)
}

/// serde's description of a value ("integer `5`", "map") in TOML's names.
fn found_value(found: &str) -> String {
    let named = [
        ("integer ", "the integer "),
        ("floating point ", "the number "),
        ("string ", "the string "),
        ("boolean ", ""),
    ];
    for (serde_name, toml_name) in named {
        if let Some(value) = found.strip_prefix(serde_name) {
            return format!("{toml_name}{value}");
        }
    }
    match found {
        "map" => "a table".to_owned(),
        "sequence" => "a list".to_owned(),
        other => other.to_owned(),
    }
}
