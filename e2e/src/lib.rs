//! The local control plane Troupe is developed and tested against, and the end-to-end suite.
//!
//! There is no cluster and no container engine on our machines. `e2e/cluster.sh` starts real
//! upstream parts (etcd, the apiextensions-apiserver); this crate adds what they lack:
//! - [`front`]: kubectl discovery (`/api`, `/apis`) and core/v1 Events for `kubectl describe`;
//! - [`standins`]: apps/v1 Deployments, coordination.k8s.io/v1 Leases and events.k8s.io/v1 Events
//!   served as CRDs with schemas generated from k8s-openapi;
//! - [`node`]: a node agent playing the Deployment controller and the kubelet, running each pod
//!   as a local process on its own loopback address.
//!
//! and the library of the chaos suite ([`chaos`]: fault plan, single-activation checker, fault
//! injection), whose test is `tests/chaos.rs`.

pub mod chaos;
pub mod front;
pub mod install;
pub mod node;
pub mod smp;
pub mod standins;
