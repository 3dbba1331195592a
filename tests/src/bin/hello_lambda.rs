//! The cold-start baseline: a hello-world `lambda_http` function with the same tracing setup
//! as Sondeo's functions (`lambda_http::tracing::init_default_subscriber`) and nothing else.
//! `cargo bench -p sondeo-tests --bench cold_start` compares each function's init time to it.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(service_fn(|_req: Request| async {
        Response::builder()
            .status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from("hello"))
            .map_err(Error::from)
    }))
    .await
}
