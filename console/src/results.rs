//! The outcomes of actions done, kept a while under random ids, so that a done action answers
//! with a redirect to its result page (POST, redirect, GET): reloading that page shows the result
//! again instead of asking the browser to send the form again, which would promote twice. An id
//! is unguessable, so a link cannot claim an action that was not done.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use crate::pages::act::Act;

/// How many outcomes are kept; older ones are forgotten (their pages say so).
pub const KEPT: usize = 100;

/// One action done from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub act: Act,
    pub namespace: String,
    pub name: String,
}

/// The last [`KEPT`] outcomes.
#[derive(Default)]
pub struct Results {
    kept: Mutex<VecDeque<(String, Arc<Outcome>)>>,
}

impl Results {
    /// Keeps `outcome`; answers its id (16 random bytes, hex).
    pub fn put(&self, outcome: Outcome) -> String {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back((id.clone(), Arc::new(outcome)));
        id
    }

    pub fn get(&self, id: &str) -> Option<Arc<Outcome>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|(k, _)| k == id).map(|(_, o)| o.clone())
    }
}
