//! Argon2's working memory goes back to the system after every hash: the service's resident
//! memory does not grow with the sign-ups and logins it has served. Its own test binary, so that
//! nothing else runs in the process whose memory it reads.

use svc_user::domain::PasswordHash;

fn resident_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).expect("a number of kB")
}

#[test]
fn hashing_and_verifying_give_their_memory_back() {
    let hash = PasswordHash::decoy().unwrap();
    let before = resident_kb();
    for _ in 0..5 {
        PasswordHash::decoy().unwrap();
        assert!(!hash.verify("not the password 1").unwrap());
    }
    // Each hash touches 19 MiB: kept, ten of them would be ~190 MB.
    let grown = resident_kb().saturating_sub(before);
    assert!(grown < 8 * 1024, "resident memory grew by {grown} kB over ten hashes");
}
