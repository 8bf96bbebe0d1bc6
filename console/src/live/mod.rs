//! Live updates. One watch per kind feeds the whole server ([`crate::watch`]); each change is
//! turned into topics ([`topics`]); the [`hub`] gathers the topics of a short window into one
//! numbered batch and broadcasts it to every open page over server-sent events ([`sse`]). A page
//! names the topics it shows (`data-topics`), and its script re-fetches its live region when a
//! batch names one of them. Fifty open browsers cost fifty SSE streams reading one broadcast,
//! never fifty watches, and the browsers that fetch the same region for the same batch share one
//! render of it ([`regions`]).

pub mod hub;
pub mod regions;
pub mod sse;
pub mod topics;

pub use hub::Hub;
pub use topics::Change;
