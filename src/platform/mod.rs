//! What the rest of Graft stands on: the files it ships and where a user's files live
//! ([`assets`]), the compute device ([`device`]), writes that never leave a partial file
//! ([`fsutil`]), the process's peak memory ([`memory`]) and thread priority ([`priority`]).
//! Nothing here knows about models, data sets or training.

pub mod assets;
pub mod device;
pub mod fsutil;
pub mod hash;
pub mod interval;
pub mod memory;
pub mod paths;
pub mod priority;
