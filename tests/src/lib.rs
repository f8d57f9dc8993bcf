//! Cross-binary tests live in `tests/tests/`.
