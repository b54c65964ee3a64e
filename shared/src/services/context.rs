//! Everything a request-serving entry point (the API and OAuth functions, `seatkeeper serve`)
//! hands to the services: built once per container or process, shared by every request.

use crate::clock::Clock;
use crate::provider::box_client::BoxConfig;
use crate::provider::http::HttpClient;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::trigger::SyncTrigger;
use std::sync::Arc;

#[derive(Clone)]
pub struct ServiceContext {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn Secrets>,
    pub clock: Arc<dyn Clock>,
    pub http: HttpClient,
    pub box_config: BoxConfig,
    /// Box's authorize page (`SEATKEEPER_BOX_AUTHORIZE_URL`).
    pub box_authorize_url: String,
    /// The public HTTPS base of the API (`SEATKEEPER_PUBLIC_BASE_URL`, no trailing slash):
    /// OAuth `redirect_uri`s and start URLs are built from it, never from a Host header.
    pub public_base_url: String,
    /// Starts a sync elsewhere: the license-sync function in AWS, a task in-process locally.
    pub sync_trigger: Arc<dyn SyncTrigger>,
}
