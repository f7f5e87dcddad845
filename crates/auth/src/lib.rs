//! Bearer-token authentication: the dev issuer key, ES256 JWT minting and validation.
