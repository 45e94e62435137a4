// SECURITY.md G8: secrets have no `==`; they compare only in constant time (`Secret::ct_eq`).
use oidc_auth::Secret;

fn main() {
    let configured = Secret::new("s3cret");
    let presented = Secret::new("guess");
    let _ = configured == presented;
}
