//! Password hashes: the argon2 and bcrypt crates' own hash and verify, with the parameters
//! of each realm's scheme. Blocking work: [`crate::credentials::hasher`] runs it.

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher as _, Version};

/// How a realm stores new passwords (docs/api.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Argon2id, m=19456 KiB, t=2, p=1 (OWASP's recommendation).
    Argon2id,
    /// bcrypt `$2b$` at this cost, what the AutoBot backend's `bcrypt.checkpw` verifies.
    Bcrypt { cost: u32 },
}

/// Argon2id memory cost (KiB), iterations and lanes of new hashes.
const ARGON2_M: u32 = 19_456;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;

/// Hashes of a password nobody knows, checked when the account does not exist so that an
/// unknown username costs the same time as a wrong password. They are constants: computing
/// them at start would delay start-up by a hash.
const DUMMY_ARGON2ID: &str = "$argon2id$v=19$m=19456,t=2,p=1$9EfAnX468y8ik1P8BG7Vrw$KmpWN1yXCsHc4B5gDTin9NEXuPlUfx47xc9zXT2zBr0";
/// The salt and checksum of a bcrypt dummy. A bcrypt check costs what the hash's own cost
/// field says, so the dummy carries the realm's cost in front of these (`$2b$<cost>$…`): a
/// dummy at another cost than real hashes would tell unknown usernames apart by time.
const DUMMY_BCRYPT_SALT_AND_HASH: &str = "nvZyirAJoYpCjmFgWWfIJuAaorWzbsEU4AAVeRP0d0refRvixGwjC";

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The stored hash uses another scheme or other parameters than the realm's: store a
    /// fresh hash now that the password is known.
    pub needs_rehash: bool,
}

pub const REJECTED: Verified = Verified {
    ok: false,
    needs_rehash: false,
};

/// The memory of one Argon2 hash (19 MiB at the realm's parameters), which a check fills
/// entirely before reading it: it can serve one check after another unwiped.
pub type WorkArea = Vec<Block>;

/// The blocks of an area worth keeping between checks: the realm's own parameters. A larger
/// area (an imported hash with more memory) is freed after its check.
pub const KEPT_AREA_BLOCKS: usize = ARGON2_M as usize;

fn argon2() -> Argon2<'static> {
    #[expect(
        clippy::unwrap_used,
        reason = "constant parameters that are known to be valid"
    )]
    let params = Params::new(ARGON2_M, ARGON2_T, ARGON2_P, None).unwrap();
    Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params)
}

impl Scheme {
    /// Hashes `password` for storage (blocking: call it on the pool).
    pub fn hash(self, password: &str) -> anyhow::Result<String> {
        match self {
            Self::Argon2id => argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}")),
            Self::Bcrypt { cost } => {
                bcrypt::hash(password, cost).map_err(|e| anyhow::anyhow!("bcrypt hash failed: {e}"))
            }
        }
    }

    /// The longest password this scheme hashes whole, in bytes: bcrypt reads 72.
    pub fn max_password_bytes(self) -> Option<usize> {
        match self {
            Self::Argon2id => None,
            Self::Bcrypt { .. } => Some(72),
        }
    }

    /// The hash checked when there is no account, costing what a real check costs.
    pub fn dummy(self) -> String {
        match self {
            Self::Argon2id => DUMMY_ARGON2ID.to_owned(),
            Self::Bcrypt { cost } => format!("$2b${cost:02}${DUMMY_BCRYPT_SALT_AND_HASH}"),
        }
    }

    /// Whether a hash that verified was made exactly as this scheme makes new ones.
    pub fn is_current(self, stored: &str) -> bool {
        match self {
            Self::Argon2id => stored.starts_with(&format!(
                "$argon2id$v=19$m={ARGON2_M},t={ARGON2_T},p={ARGON2_P}$"
            )),
            Self::Bcrypt { cost } => stored.starts_with(&format!("$2b${cost:02}$")),
        }
    }

    /// Checks `password` against a stored Argon2 (any variant and parameters) or bcrypt
    /// (`$2a$`, `$2b$`, `$2y$`) hash (blocking: call it on the pool), an Argon2 one in `area`.
    /// An unreadable hash is a mismatch, never an error: the caller answers as for a wrong
    /// password.
    pub fn verify(self, password: &str, stored: &str, area: &mut WorkArea) -> Verified {
        let ok = if stored.starts_with("$argon2") {
            PasswordHash::new(stored)
                .is_ok_and(|parsed| argon2_matches(password.as_bytes(), &parsed, area))
        } else if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            bcrypt::verify(password, stored).unwrap_or(false)
        } else {
            false
        };
        if !ok {
            return REJECTED;
        }
        Verified {
            ok,
            needs_rehash: !self.is_current(stored),
        }
    }
}

/// What the argon2 crate's `verify_password` does (the hash's own algorithm, version and
/// parameters; the crate's constant-time comparison of outputs), computed in `area` instead of
/// a newly allocated and zeroed one: at 19 MiB, allocating and zeroing cost a tenth of a check.
fn argon2_matches(password: &[u8], stored: &PasswordHash, area: &mut WorkArea) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(stored.algorithm.as_str()),
        Params::try_from(stored),
    ) else {
        return false;
    };
    let Ok(version) = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut output, &mut area[..blocks])
        .is_ok()
        && argon2::password_hash::phc::Output::new(&output).is_ok_and(|o| &o == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT_LOW: Scheme = Scheme::Bcrypt { cost: 4 };

    /// A hash made with other Argon2 settings than the realm's (m KiB, t passes, one lane).
    fn argon2_hash(
        algorithm: Algorithm,
        version: Version,
        m: u32,
        t: u32,
        password: &str,
    ) -> String {
        Argon2::new(
            algorithm,
            version,
            Params::new(m, t, 1, None).expect("params"),
        )
        .hash_password(password.as_bytes())
        .expect("hash")
        .to_string()
    }

    #[test]
    fn argon2id_hashes_carry_the_fixed_parameters_and_verify() {
        let hash = Scheme::Argon2id.hash("correct horse").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let ok = Scheme::Argon2id.verify("correct horse", &hash, &mut WorkArea::new());
        assert_eq!(
            ok,
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(
            !Scheme::Argon2id
                .verify("wrong horse", &hash, &mut WorkArea::new())
                .ok
        );
    }

    #[test]
    fn bcrypt_hashes_are_2b_at_the_configured_cost() {
        let hash = BCRYPT_LOW.hash("correct horse").expect("hash");
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert_eq!(
            BCRYPT_LOW.verify("correct horse", &hash, &mut WorkArea::new()),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(
            !BCRYPT_LOW
                .verify("wrong horse", &hash, &mut WorkArea::new())
                .ok
        );
    }

    #[test]
    fn any_known_hash_verifies_and_asks_to_be_rehashed_to_the_realms_scheme() {
        let bcrypt_hash = BCRYPT_LOW.hash("pw-one-two").expect("bcrypt");
        let argon_hash = Scheme::Argon2id.hash("pw-one-two").expect("argon2");
        let moved = Scheme::Argon2id.verify("pw-one-two", &bcrypt_hash, &mut WorkArea::new());
        assert_eq!(
            moved,
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
        let moved = BCRYPT_LOW.verify("pw-one-two", &argon_hash, &mut WorkArea::new());
        assert_eq!(
            moved,
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
        // Another bcrypt cost, and the $2y$ spelling of PHP's bcrypt, also verify.
        let other_cost = bcrypt::hash("pw-one-two", 5).expect("cost 5");
        assert!(
            BCRYPT_LOW
                .verify("pw-one-two", &other_cost, &mut WorkArea::new())
                .needs_rehash
        );
        let php = other_cost.replacen("$2b$", "$2y$", 1);
        assert!(
            BCRYPT_LOW
                .verify("pw-one-two", &php, &mut WorkArea::new())
                .ok
        );
        // Other Argon2 parameters verify and are upgraded.
        let weak = argon2_hash(Algorithm::Argon2id, Version::V0x13, 8192, 1, "pw-one-two");
        assert_eq!(
            Scheme::Argon2id.verify("pw-one-two", &weak, &mut WorkArea::new()),
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
    }

    #[test]
    fn one_work_area_serves_checks_of_any_parameters_in_turn() {
        // The area is reused unwiped, larger or smaller than the next hash needs: what a check
        // leaves in it never changes the next one's outcome.
        let hashes = [
            (
                "correct horse",
                Scheme::Argon2id.hash("correct horse").expect("hash"),
            ),
            (
                "other password",
                argon2_hash(
                    Algorithm::Argon2id,
                    Version::V0x13,
                    8192,
                    1,
                    "other password",
                ),
            ),
            (
                "third one",
                argon2_hash(Algorithm::Argon2i, Version::V0x10, 1024, 3, "third one"),
            ),
        ];
        let mut area = WorkArea::new();
        for _ in 0..2 {
            for (password, stored) in &hashes {
                assert!(
                    Scheme::Argon2id.verify(password, stored, &mut area).ok,
                    "{stored}"
                );
                let wrong = format!("{password}!");
                assert!(
                    !Scheme::Argon2id.verify(&wrong, stored, &mut area).ok,
                    "{stored}"
                );
            }
        }
        assert_eq!(area.len(), KEPT_AREA_BLOCKS);
    }

    #[test]
    fn garbage_never_verifies() {
        for stored in ["", "plain", "$argon2id$broken", "$2b$12$short", "$1$md5$"] {
            assert!(
                !Scheme::Argon2id
                    .verify("x", stored, &mut WorkArea::new())
                    .ok,
                "{stored}"
            );
        }
    }

    #[test]
    fn the_dummy_hashes_are_well_formed_for_their_scheme() {
        // A malformed dummy would be rejected instantly and make unknown users fast to spot.
        assert!(PasswordHash::new(DUMMY_ARGON2ID).is_ok());
        // Each dummy is made exactly as the realm makes new hashes, at its cost.
        for scheme in [
            Scheme::Argon2id,
            Scheme::Bcrypt { cost: 4 },
            Scheme::Bcrypt { cost: 12 },
            Scheme::Bcrypt { cost: 31 },
        ] {
            let dummy = scheme.dummy();
            assert!(scheme.is_current(&dummy), "{scheme:?}: {dummy}");
            if let Scheme::Bcrypt { cost } = scheme {
                let parts: bcrypt::HashParts = dummy.parse().expect("a bcrypt hash");
                assert_eq!(parts.get_cost(), cost);
            }
        }
    }
}
