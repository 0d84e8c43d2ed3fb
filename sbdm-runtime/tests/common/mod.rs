//! Helpers shared by the training tests.

use std::path::{Path, PathBuf};

use candle_core::Device;
use sbdm_runtime::train::checkpoint;
use sbdm_runtime::train::{Objective, Trainer};

/// Every tensor of the checkpoint at `path`, flattened to f32, sorted by name.
pub fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let ck = checkpoint::load(path, &Device::Cpu).unwrap();
    let mut v: Vec<_> = ck
        .tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A training run the resume tests drive: a [`Trainer`] of any objective.
pub trait Run {
    /// One step.
    fn step(&mut self);
    /// Saves a checkpoint.
    fn save(&self, path: &Path);
    /// Resumes from a checkpoint.
    fn restore(&mut self, path: &Path);
    /// Steps completed.
    fn steps_done(&self) -> u64;
}

impl<O: Objective> Run for Trainer<O> {
    fn step(&mut self) {
        Trainer::step(self).unwrap();
    }
    fn save(&self, path: &Path) {
        Trainer::save(self, path).unwrap();
    }
    fn restore(&mut self, path: &Path) {
        Trainer::restore(self, path).unwrap();
    }
    fn steps_done(&self) -> u64 {
        Trainer::steps_done(self)
    }
}

/// Trains a fresh `make()` run 6 steps and saves it to `dir/half.safetensors`; then
/// restores another fresh run from that file, checks it is at step 6, trains it 6 steps
/// more and saves it to `dir/resumed.safetensors`. Returns the two paths.
pub fn half_then_resume<R: Run>(dir: &Path, make: impl Fn() -> R) -> (PathBuf, PathBuf) {
    let half = dir.join("half.safetensors");
    let mut b = make();
    for _ in 0..6 {
        b.step();
    }
    b.save(&half);
    drop(b);
    let mut c = make();
    c.restore(&half);
    assert_eq!(c.steps_done(), 6);
    for _ in 0..6 {
        c.step();
    }
    let resumed = dir.join("resumed.safetensors");
    c.save(&resumed);
    (half, resumed)
}
