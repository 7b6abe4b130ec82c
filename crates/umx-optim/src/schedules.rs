//! Learning-rate schedules (mlx.optimizers' `exponential_decay`, `step_decay`,
//! `cosine_decay`, `linear_schedule`, `join_schedules`): functions of the step count.

use std::sync::Arc;

/// A learning rate as a function of the step (0 for the first update).
#[derive(Clone)]
pub struct Schedule(Arc<dyn Fn(usize) -> f64 + Send + Sync>);

impl Schedule {
    /// A schedule from any function of the step.
    pub fn new(f: impl Fn(usize) -> f64 + Send + Sync + 'static) -> Schedule {
        Schedule(Arc::new(f))
    }

    /// The learning rate at `step`.
    pub fn at(&self, step: usize) -> f64 {
        (self.0)(step)
    }
}

impl From<f64> for Schedule {
    fn from(lr: f64) -> Schedule {
        Schedule::new(move |_| lr)
    }
}

/// `init * decay_rate^step`.
pub fn exponential_decay(init: f64, decay_rate: f64) -> Schedule {
    Schedule::new(move |s| init * decay_rate.powi(s as i32))
}

/// `init * decay_rate^(step / step_size)` (integer division).
pub fn step_decay(init: f64, decay_rate: f64, step_size: usize) -> Schedule {
    let size = step_size.max(1);
    Schedule::new(move |s| init * decay_rate.powi((s / size) as i32))
}

/// Cosine decay from `init` to `end` over `decay_steps`, then `end`.
pub fn cosine_decay(init: f64, decay_steps: usize, end: f64) -> Schedule {
    Schedule::new(move |s| {
        let t = s.min(decay_steps) as f64 / decay_steps.max(1) as f64;
        end + 0.5 * (init - end) * (1.0 + (std::f64::consts::PI * t).cos())
    })
}

/// Linear from `init` to `end` over `steps`, then `end` (a warm-up).
pub fn linear_schedule(init: f64, end: f64, steps: usize) -> Schedule {
    Schedule::new(move |s| init + (end - init) * s.min(steps) as f64 / steps.max(1) as f64)
}

/// `schedules[i]` from `boundaries[i - 1]` on, each counting its steps from its boundary.
pub fn join_schedules(schedules: Vec<Schedule>, boundaries: Vec<usize>) -> Schedule {
    Schedule::new(move |s| {
        let i = boundaries.iter().take_while(|&&b| s >= b).count();
        let start = if i == 0 { 0 } else { boundaries[i - 1] };
        match schedules.get(i).or(schedules.last()) {
            Some(f) => f.at(s - start),
            None => 0.0,
        }
    })
}
