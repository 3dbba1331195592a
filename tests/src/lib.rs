//! Integration and end-to-end tests of Sondeo live in `tests/tests/`.
