//! Device placement in the study loop: which device each worker of a run trains
//! on, and how many workers each device keeps as trials run out of memory or the
//! objective measures how many fit ([`DeviceShare`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Event, Host};
use crate::Result;
use crate::error::Error;
use crate::objective::Objective;
use crate::spec::{PerDevice, StudySpec};

/// The workers of one run on their devices. A worker that leaves a device (a
/// trial there ran out of memory, or fewer trials fit than were started) lowers
/// its count; the last worker on a device never leaves it.
pub(super) struct DeviceShare {
    /// Each worker's device, `None` for a worker on the objective's own device.
    slots: Vec<Option<String>>,
    /// Workers still running per device.
    load: Mutex<BTreeMap<String, usize>>,
    /// `trials_per_device = "auto"`: workers leave a device down to the number of
    /// trials the objective measured fit there.
    fit_to_capacity: bool,
}

impl DeviceShare {
    /// The workers of `spec`'s run: one per device slot when the study shares
    /// devices, else `workers` (the `--workers` flag) or the file's `workers`.
    pub(super) fn new(spec: &StudySpec, workers: Option<usize>) -> Result<DeviceShare> {
        let mut slots = spec.worker_slots();
        if let Some(n) = workers {
            if slots.iter().any(Option::is_some) {
                return Err(Error::Worker(
                    "--workers does not apply to a study with `devices` or `trials_per_device`: its workers are one per device slot".to_owned(),
                ));
            }
            slots = vec![None; n.max(1)];
        }
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        for device in slots.iter().flatten() {
            *load.entry(device.clone()).or_default() += 1;
        }
        let fit_to_capacity =
            spec.objective.devices().is_some_and(|devices| devices.per_device == PerDevice::Auto);
        Ok(DeviceShare { slots, load: Mutex::new(load), fit_to_capacity })
    }

    /// Each worker's device.
    pub(super) fn slots(&self) -> &[Option<String>] {
        &self.slots
    }

    fn load(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, usize>> {
        self.load.lock().unwrap_or_else(|it| it.into_inner())
    }

    /// With `trials_per_device = "auto"`: whether a worker leaves `device`
    /// because the objective measured that fewer trials fit there than its
    /// workers (decided under the lock, so exactly the excess leaves). The last
    /// one to leave tells the host.
    pub(super) fn over_capacity(
        &self,
        device: &str,
        objective: &dyn Objective,
        host: &dyn Host,
    ) -> bool {
        if !self.fit_to_capacity {
            return false;
        }
        let Some(capacity) = objective.capacity(device) else { return false };
        let mut load = self.load();
        match load.get_mut(device) {
            Some(n) if *n > capacity.max(1) => {
                *n -= 1;
                let remaining = *n;
                drop(load);
                if remaining == capacity.max(1) {
                    host.event(Event::DeviceFitted { device, remaining });
                }
                true
            }
            _ => false,
        }
    }

    /// After a trial ran out of memory on `device`: true when its worker leaves
    /// the device to the others there (the trial is then queued again for fewer
    /// trials at once); false when it is alone there, or has no device slot.
    pub(super) fn try_leave(&self, device: Option<&str>) -> bool {
        let mut load = self.load();
        match device.and_then(|d| load.get_mut(d)) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Tells the host that a worker left `device` after running out of memory.
    pub(super) fn tell_shrunk(&self, device: Option<&str>, host: &dyn Host) {
        let remaining = device.and_then(|d| self.load().get(d).copied()).unwrap_or(0);
        host.event(Event::DeviceShrunk { device: device.unwrap_or("?"), remaining });
    }
}
