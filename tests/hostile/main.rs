//! Hostile peers attack a victim DHT node over real libp2p connections on 127.0.0.1, one attack
//! per module. Each test asserts the secure behaviour and that the victim keeps serving an honest
//! peer during or after the attack.
//!
//! Run one attack with its test name as a filter, e.g.
//! `cargo test --test hostile header_only_streams`.

mod common;
mod wire_common;

mod answers_with_unbounded_expiration;
mod concurrent_calls;
mod connection_flood;
mod find_flood;
mod find_with_one_key_repeated;
mod header_only;
mod hivemind_subkey;
mod kad_records;
mod node_id_churn;
mod owner_marker_in_key;
mod ping_claiming_an_honest_id;
mod record_expiring_in_31_years;
mod refused_rewrite_does_not_free_quota;
mod regular_store_over_signed_dictionary;
mod stream_flood;
mod unfinished_large_requests;
mod unread_responses;
mod validation_after_quotas;
