//! Helpers shared by the Argus benchmarks.
