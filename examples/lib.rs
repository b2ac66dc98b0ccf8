//! Helpers shared by the Argus examples.
