//! Device placement in the study loop: which device each worker of a run trains
//! on, and how many of them run trials at once on each device as trials run out of
//! memory or the objective measures how many should ([`DeviceShare`]).

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Event, Host};
use crate::Result;
use crate::error::Error;
use crate::objective::{Capacity, Objective};
use crate::spec::{PerDevice, StudySpec};

/// The workers of one run on their devices. A worker that leaves a device (a
/// trial there ran out of memory) lowers its count for good; the last worker on a
/// device never leaves it. With `trials_per_device = "auto"` the workers over the
/// objective's [`Capacity`] wait between trials, and look again whenever another
/// worker is about to take a trial or stops: they take trials again when the
/// capacity rose or a place came free.
pub(super) struct DeviceShare {
    /// Each worker's device, `None` for a worker on the objective's own device.
    slots: Vec<Option<String>>,
    /// Per device, its workers.
    load: Mutex<BTreeMap<String, Load>>,
    /// Told when a worker takes its turn or stops, so waiting ones look again.
    changed: Condvar,
    /// `trials_per_device = "auto"`: workers wait while more run than the
    /// objective's capacity.
    fit_to_capacity: bool,
}

/// The workers of one device.
#[derive(Debug, Default)]
struct Load {
    /// Workers that have not left after running out of memory.
    staying: usize,
    /// Workers that take trials: not waiting, not stopped.
    active: usize,
    /// The capacity last told to the host.
    told: Option<Capacity>,
    /// The most trials at once since one ran out of memory with one more.
    ceiling: Option<usize>,
}

/// Whether a worker may take a trial on its device now ([`DeviceShare::turn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// It may.
    Go,
    /// It waits: the device runs as many trials as it should.
    Wait,
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
        let mut load: BTreeMap<String, Load> = BTreeMap::new();
        for device in slots.iter().flatten() {
            let load = load.entry(device.clone()).or_default();
            load.staying += 1;
            load.active += 1;
        }
        let fit_to_capacity =
            spec.objective.devices().is_some_and(|devices| devices.per_device == PerDevice::Auto);
        Ok(DeviceShare { slots, load: Mutex::new(load), changed: Condvar::new(), fit_to_capacity })
    }

    /// Each worker's device.
    pub(super) fn slots(&self) -> &[Option<String>] {
        &self.slots
    }

    fn load(&self) -> MutexGuard<'_, BTreeMap<String, Load>> {
        self.load.lock().unwrap_or_else(|it| it.into_inner())
    }

    /// With `trials_per_device = "auto"`, before each trial of a worker on
    /// `device` (`waiting`: whether that worker waits now, kept by it): whether it
    /// takes one, against the objective's capacity there (decided under the lock,
    /// so exactly the excess waits, and waiting ones come back one per free
    /// place). [`Turn::Wait`] returns once another worker took its turn or
    /// stopped (or at once when this worker has a change to tell); the caller
    /// then asks again. A change of capacity is told to the host once, by the
    /// worker that first sees it.
    pub(super) fn turn(
        &self,
        device: &str,
        objective: &dyn Objective,
        host: &dyn Host,
        waiting: &mut bool,
    ) -> Turn {
        if !self.fit_to_capacity {
            return Turn::Go;
        }
        let capacity = objective.capacity(device);
        let mut loads = self.load();
        let Some(load) = loads.get_mut(device) else { return Turn::Go };
        let limit = capacity.as_ref().map_or(usize::MAX, |it| it.trials.max(1));
        let limit = limit.min(load.ceiling.unwrap_or(usize::MAX));
        let turn = match (*waiting, load.active) {
            (true, active) if active < limit => {
                load.active += 1;
                *waiting = false;
                Turn::Go
            }
            (true, _) => Turn::Wait,
            // The last worker there never waits.
            (false, active) if active > limit && active > 1 => {
                load.active -= 1;
                *waiting = true;
                Turn::Wait
            }
            (false, _) => Turn::Go,
        };
        let tell = capacity.filter(|it| load.told.as_ref() != Some(it));
        if let Some(capacity) = &tell {
            load.told = Some(capacity.clone());
        }
        // A worker with news tells it before it waits (it waits at its next turn).
        if turn == Turn::Wait && tell.is_none() {
            drop(self.changed.wait(loads).unwrap_or_else(|it| it.into_inner()));
        } else {
            drop(loads);
            self.changed.notify_all();
        }
        if let Some(Capacity { trials, why }) = tell {
            host.event(Event::DeviceFitted { device, remaining: trials, why: &why });
        }
        turn
    }

    /// A worker on `device` stops (`waiting`: whether it was waiting): a waiting
    /// one can take its place.
    pub(super) fn stopped(&self, device: Option<&str>, waiting: bool) {
        if waiting {
            return;
        }
        let mut loads = self.load();
        if let Some(load) = device.and_then(|d| loads.get_mut(d)) {
            load.active = load.active.saturating_sub(1);
        }
        drop(loads);
        self.changed.notify_all();
    }

    /// After a trial ran out of memory on `device`: true when its worker leaves
    /// the device to the others there (the trial is then queued again for fewer
    /// trials at once); false when it is alone there, or has no device slot.
    pub(super) fn try_leave(&self, device: Option<&str>) -> bool {
        let mut loads = self.load();
        match device.and_then(|d| loads.get_mut(d)) {
            Some(load) if load.staying > 1 => {
                load.staying -= 1;
                let ceiling = load.active.saturating_sub(1).max(1);
                load.ceiling = Some(load.ceiling.map_or(ceiling, |it| it.min(ceiling)));
                true
            }
            _ => false,
        }
    }

    /// Tells the host that a worker left `device` after running out of memory.
    pub(super) fn tell_shrunk(&self, device: Option<&str>, host: &dyn Host) {
        let remaining = device
            .and_then(|d| {
                self.load().get(d).map(|l| l.staying.min(l.ceiling.unwrap_or(usize::MAX)))
            })
            .unwrap_or(0);
        host.event(Event::DeviceShrunk { device: device.unwrap_or("?"), remaining });
    }
}
