mod common;
use common::*;

#[test]
fn serves_a_gif_over_http() {
    let srv = Server::start(&[]);
    let r = srv.get("/ad.gif");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-type"), Some("image/gif"));
    assert_eq!(r.body.len(), 42);
    assert_eq!(srv.stat("gif"), 1);
}
