//! Helpers shared by the Argus workspace integration tests.
