//! `device`, `devices` and `trials_per_device` of `[objective]`: where a study's
//! trials run and how many at once on each device ([`Devices`]).
//!
//! Device names are the objective's words (a candle training's `cpu` or `cuda:1`,
//! a command's `cuda:N`), checked by the crate that builds the objective through
//! [`StudySpec::error_at`] at `objective.device` or `objective.devices[i]`. Here
//! they are only names that workers share.

use std::ops::Range;

use serde_spanned::Spanned;

use super::raw::RawObjective;
use super::sampler::most;
use super::{Ctx, SpecError};

/// The workers per device that `trials_per_device = "auto"` starts (the most
/// trials at once it runs there): the objective says how many of them run trials
/// ([`crate::objective::Objective::capacity`]), from measured memory and speed.
pub const AUTO_TRIALS_PER_DEVICE: usize = 8;

/// Where a study's trials run, as the study file says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Devices {
    /// `device`, when the file sets it: the one device every trial uses.
    pub device: Option<String>,
    /// `devices`: the devices the trials are shared among; empty unless set.
    pub devices: Vec<String>,
    /// `trials_per_device`.
    pub per_device: PerDevice,
}

/// `trials_per_device`: how many trials run at once on each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerDevice {
    /// A fixed number, 1 unless set.
    Fixed(usize),
    /// `"auto"`: [`AUTO_TRIALS_PER_DEVICE`] workers, as many of them running trials
    /// as the objective says ([`crate::objective::Objective::capacity`]).
    Auto,
}

impl Default for PerDevice {
    fn default() -> PerDevice {
        PerDevice::Fixed(1)
    }
}

impl PerDevice {
    /// The trials a run starts on each device.
    pub fn count(self) -> usize {
        match self {
            PerDevice::Fixed(n) => n,
            PerDevice::Auto => AUTO_TRIALS_PER_DEVICE,
        }
    }
}

impl Devices {
    /// The device of a file that names none: the objective chooses.
    pub const AUTO: &str = "auto";

    /// Whether each worker of a run has a device slot of its own: with `devices`,
    /// or with more than one trial per device.
    pub fn is_shared(&self) -> bool {
        !self.devices.is_empty() || self.per_device != PerDevice::Fixed(1)
    }

    /// Every device the file names, in order: `devices`, else `device`, else
    /// [`Devices::AUTO`].
    pub fn names(&self) -> Vec<&str> {
        match (&self.device, self.devices.is_empty()) {
            (_, false) => self.devices.iter().map(String::as_str).collect(),
            (Some(device), true) => vec![device.as_str()],
            (None, true) => vec![Self::AUTO],
        }
    }

    /// The location key of the `i`-th of [`Devices::names`], for
    /// [`StudySpec::error_at`](super::StudySpec::error_at).
    pub fn location(&self, i: usize) -> String {
        if self.devices.is_empty() {
            "objective.device".to_owned()
        } else {
            format!("objective.devices[{i}]")
        }
    }

    /// One device per worker when they are shared ([`Devices::is_shared`]): each
    /// device `count` times, interleaved so that the first workers spread across
    /// the devices.
    pub fn worker_slots(&self) -> Option<Vec<String>> {
        if !self.is_shared() {
            return None;
        }
        let names = self.names();
        Some(
            (0..self.per_device.count())
                .flat_map(|_| names.iter().map(|name| (*name).to_owned()))
                .collect(),
        )
    }
}

/// Which objective the fields are read for: a candle training takes `device`
/// and `trials_per_device = "auto"`, a command neither, and a command's
/// `trials_per_device` needs `devices`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum DeviceRules {
    Training,
    Command,
}

/// Reads `device`, `devices` and `trials_per_device`, noting where each device
/// name is written.
pub(super) fn validate_devices(
    ctx: &Ctx<'_>,
    raw: &RawObjective,
    rules: DeviceRules,
    locate: &mut impl FnMut(&str, Range<usize>),
) -> Result<Devices, SpecError> {
    let name = |it: &Spanned<String>, field: &str| {
        if it.get_ref().trim().is_empty() {
            Err(ctx.error(
                it.span(),
                format!("[objective].{field}"),
                "a device name is empty; write one, e.g. \"cpu\" or \"cuda:0\"",
            ))
        } else {
            Ok(it.get_ref().clone())
        }
    };
    let device = match &raw.device {
        Some(it) => {
            locate("objective.device", it.span());
            Some(name(it, "device")?)
        }
        None => None,
    };
    let devices = match &raw.devices {
        None => Vec::new(),
        Some(list) if list.get_ref().is_empty() => {
            return Err(ctx.error(
                list.span(),
                "[objective].devices",
                "`devices` lists at least one device, e.g. [\"cuda:0\", \"cuda:1\"]",
            ));
        }
        Some(list) => {
            let mut devices = Vec::new();
            for (i, it) in list.get_ref().iter().enumerate() {
                locate(&format!("objective.devices[{i}]"), it.span());
                devices.push(name(it, "devices")?);
            }
            devices
        }
    };
    if let Some(it) = &raw.device
        && !devices.is_empty()
    {
        return Err(ctx.error(
            it.span(),
            "[objective].device",
            "set `device` or `devices`, not both",
        ));
    }
    let per_device = match (&raw.trials_per_device, rules) {
        (None, _) => PerDevice::Fixed(1),
        (Some(it), DeviceRules::Training) => match it.get_ref() {
            toml::Value::Integer(n) if (1..=most("trials_per_device")).contains(n) => {
                PerDevice::Fixed(*n as usize)
            }
            toml::Value::String(s) if s == "auto" => PerDevice::Auto,
            other => {
                return Err(ctx.error(
                    it.span(),
                    "[objective].trials_per_device",
                    format!(
                        "`trials_per_device` must be a whole number between 1 and {} or \"auto\", got {other}",
                        most("trials_per_device")
                    ),
                ));
            }
        },
        (Some(it), DeviceRules::Command) => match it.get_ref() {
            toml::Value::Integer(n)
                if (1..=most("trials_per_device")).contains(n) && !devices.is_empty() =>
            {
                PerDevice::Fixed(*n as usize)
            }
            _ => {
                return Err(ctx.error(
                    it.span(),
                    "[objective].trials_per_device",
                    format!(
                        "a command's `trials_per_device` is a whole number between 1 and {}, with `devices` naming the devices",
                        most("trials_per_device")
                    ),
                ));
            }
        },
    };
    Ok(Devices { device, devices, per_device })
}
