//! The S3 driver against moto, a local S3 on 127.0.0.1.

use registry_storage::StorageDriver;
use registry_storage_s3::S3Driver;
use registry_storage_s3::moto::MotoServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_storage_testsuite_on_moto() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("testsuite");
    let mut options = moto.options("testsuite");
    options.root_directory = "/some/root/".to_owned();
    let driver = S3Driver::new(options).unwrap_or_else(|error| panic!("{error}"));
    registry_storage::testsuite::run_all(&driver).await;
    assert_eq!(driver.name(), "s3");
}
