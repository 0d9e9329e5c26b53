//! Embedded Kubernetes API server simulator.
