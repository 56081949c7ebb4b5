use super::Limiter;
use crate::auth::{Identity, RequestFacts};
use crate::body::Body;
use crate::classify::Classified;
use crate::error::error_response;
use crate::usage::UsageHooks;
use agw_core::route::RouteKind;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// OpenAI endpoints whose bodies name a `model` and an `input` or `prompt` but generate no
/// tokens (moderation, speech, images): not held as generations.
fn generates_no_text(path: &str) -> bool {
    path.ends_with("/moderations") || path.contains("/audio/") || path.contains("/images/")
}

/// Applies limits and budgets. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Limit<S> {
    pub(super) inner: S,
    pub(super) limiter: Arc<Limiter>,
}

/// Whether a request retrieves, deletes, lists or cancels a batch on a path the route table
/// leaves to passthrough: Anthropic's `/v1/messages/batches/{id}` (`GET`, `DELETE`) and
/// `/v1/messages/batches/{id}/cancel` (`POST`), OpenAI's `/v1/batches`, `/v1/batches/{id}`
/// and `/v1/batches/{id}/cancel`. None generates anything; a spent budget must not keep a
/// user from stopping a batch (twelfth session's black-box review: the cancel was refused).
fn manages_a_batch(method: &http::Method, path: &str) -> bool {
    use http::Method;
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::DELETE);
    for base in ["/v1/messages/batches/", "/v1/batches/"] {
        if let Some(i) = path.find(base) {
            let rest = &path[i + base.len()..];
            return match rest.split_once('/') {
                None => !rest.is_empty() && reads,
                Some((id, "cancel")) => !id.is_empty() && *method == Method::POST,
                _ => false,
            };
        }
    }
    path.ends_with("/v1/batches") && *method == Method::GET
}

/// Why a request's usage cannot be held or charged when it is made, on OpenAI endpoints that
/// start work whose usage agw never reads: creating a batch (`POST …/batches`: it runs the
/// requests of an uploaded file, and its results come back through the files API), and
/// Assistants runs (`POST …/threads/runs`, `…/threads/{id}/runs`, and
/// `…/runs/{id}/submit_tool_outputs`, which goes on generating: their usage is reported later,
/// on a `GET` of the run); the same for Gemini's, Vertex's and Bedrock's batches, eval runs
/// and fine-tuning jobs. `None` for anything else. Found by the fourteenth review: they were
/// admitted under token and dollar budgets and charged nothing.
fn usage_unread(method: &http::Method, path: &str) -> Option<&'static str> {
    if *method != http::Method::POST {
        return None;
    }
    // The path is canonical here (classified), but its case is the client's.
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let mut last: [&str; 5] = [""; 5];
    for s in &mut last {
        *s = segments.next().unwrap_or("");
    }
    let is = |i: usize, name: &str| last[i].eq_ignore_ascii_case(name);
    let ends = |name: &str| {
        last[0].len() >= name.len()
            && last[0].is_char_boundary(last[0].len() - name.len())
            && last[0][last[0].len() - name.len()..].eq_ignore_ascii_case(name)
    };
    let batch = is(0, "batches")
        // Gemini's batches, Vertex's batch prediction, Bedrock's invocation jobs.
        || ends(":batchGenerateContent")
        || ends(":asyncBatchEmbedContent")
        || is(0, "batchPredictionJobs")
        || is(0, "model-invocation-job");
    let run = is(0, "runs") && (is(1, "threads") || is(2, "threads"))
        || is(0, "submit_tool_outputs") && is(2, "runs") && is(4, "threads");
    // An eval's run generates a dataset's completions; a job of any kind (fine-tuning,
    // Mistral's and Fireworks' batch jobs, Vertex's `tuningJobs`, Bedrock's customization and
    // evaluation jobs) bills work done later; so do generations the provider finishes later
    // (OpenAI's videos, Veo's `:predictLongRunning`, Bedrock's `async-invoke`).
    let job = is(0, "runs") && is(2, "evals")
        || ends("jobs")
        || ends("-job")
        || is(0, "videos")
        || is(0, "async-invoke")
        || ends(":predictLongRunning");
    if batch {
        Some(
            "a batch runs requests agw does not read (an uploaded file's, or held by the \
             provider), and its usage comes back with its results",
        )
    } else if run {
        Some("an Assistants run reports its usage later, on the run, where agw does not read it")
    } else if job {
        Some(
            "an eval run, a job or a generation finished later bills work whose usage agw never reads",
        )
    } else {
        None
    }
}

impl<S, B, ResB> Service<Request<B>> for Limit<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<Body<ResB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            let class = Classified::of(&req, RouteKind::Passthrough);
            let api = class.api;
            // Not limited: model listing and token counting (they cost nothing), a batch's
            // results, and listing, retrieving or cancelling batches (a spent budget must not
            // keep a user from stopping a batch or fetching what was paid for). Everything
            // else — prompts, creating message batches (one holds many billed requests),
            // passthrough endpoints (files, images, audio) — counts against the request limits
            // and is refused once a budget is spent; tokens are charged where a response
            // reports them.
            let batch_admin = (class.kind == RouteKind::MessageBatches
                && (*req.method() != http::Method::POST || req.uri().path().ends_with("/cancel")))
                || (class.kind == RouteKind::Passthrough
                    && manages_a_batch(req.method(), req.uri().path()));
            if matches!(
                class.kind,
                RouteKind::Models | RouteKind::CountTokens | RouteKind::BatchResults
            ) || batch_admin
            {
                return Ok(inner.call(req).await?.map(Body::inner));
            }
            // A response without token usage (a batch's creation, a file) holds no tokens; a
            // prompt holds its output cap (or the default) and its input's estimate. So does a
            // generation on a passthrough path (Ollama's `/api/chat`): it is charged what its
            // response reports, and while it runs it holds what it may use, so that requests
            // in flight together cannot overrun a limit (tenth red-team review: twenty at once
            // were all admitted against a budget for two).
            let generation = if class.kind == RouteKind::Passthrough
                && *req.method() == http::Method::POST
                && limiter.holds_tokens()
                && !generates_no_text(req.uri().path())
            {
                req.extensions()
                    .get::<crate::limits::Collected>()
                    .and_then(|c| {
                        let in_path = agw_core::model::path_model(req.uri().path()).is_some();
                        agw_core::usage::generation_cap(&c.plain, in_path)
                    })
            } else {
                None
            };
            // Work whose usage agw never reads cannot be held or charged: refused where a
            // token or dollar limit applies, as a batch whose requests cannot be read is.
            if class.kind == RouteKind::Passthrough
                && let Some(why) = usage_unread(req.method(), req.uri().path())
                && limiter.counts_tokens_of(req.extensions().get::<Identity>())
            {
                let err = agw_core::api::ErrorBody::new(
                    agw_core::api::ErrorKind::InvalidRequest,
                    format!(
                        "agw: this request cannot be charged against your token and spend \
                         limits, so it is refused: {why}"
                    ),
                );
                return Ok(error_response(api, &err));
            }
            let holds = crate::usage::service::has_usage(class.kind)
                || class.kind == RouteKind::MessageBatches
                || generation.is_some();
            let input = if holds && limiter.holds_tokens() {
                req.extensions()
                    .get::<crate::limits::Collected>()
                    .map_or(0, |c| agw_core::usage::input_estimate(&c.plain))
            } else {
                0
            };
            let mut batch_cost = None;
            let estimate = if crate::usage::service::has_usage(class.kind) || generation.is_some() {
                RequestFacts::ensure(&mut req);
                // A `model` key a server could read otherwise: the hold would be priced for
                // another model than the one that runs (fourteenth review: a second `model`
                // spent six times a dollar budget).
                if let Some(refusal) = req
                    .extensions()
                    .get::<RequestFacts>()
                    .and_then(|f| f.refusal(class.kind))
                {
                    return Ok(error_response(api, &refusal));
                }
                let mut shape = req
                    .extensions()
                    .get::<RequestFacts>()
                    .map(|f| f.shape)
                    .unwrap_or_default();
                if let Some(cap) = generation {
                    // Ollama's `options.num_predict` too.
                    shape.max_tokens = cap;
                }
                if class.kind == RouteKind::LegacyCompletions {
                    // Each prompt of a list is answered `n` times.
                    let prompts = req
                        .extensions()
                        .get::<crate::limits::Collected>()
                        .map_or(1, |c| agw_core::usage::prompt_count(&c.plain));
                    shape.choices = shape
                        .choices
                        .saturating_mul(prompts)
                        .min(agw_core::usage::MAX_CHOICES);
                }
                Some(limiter.estimate_shape(&shape, input))
            } else if class.kind == RouteKind::MessageBatches {
                // Each request of a batch is a call whose usage comes back with its results,
                // later: the batch holds, and is charged, the sum of their estimates, tokens
                // and cost at each request's model's price (its share of the input with its
                // output cap). A batch whose requests cannot be read cannot be charged, and is
                // refused where a limit would charge it.
                let body = req
                    .extensions()
                    .get::<crate::limits::Collected>()
                    .map(|c| c.plain.clone());
                let read = body.as_deref().map(agw_core::model::batch_requests);
                let requests = match read {
                    Some(Ok(r)) => r,
                    // Used without the body stage: nothing to read, nothing held.
                    None => Vec::new(),
                    Some(Err(e))
                        if limiter.counts_tokens_of(req.extensions().get::<Identity>()) =>
                    {
                        let err = agw_core::api::ErrorBody::new(
                            agw_core::api::ErrorKind::InvalidRequest,
                            format!("agw: the batch's requests cannot be read: {e}"),
                        );
                        return Ok(error_response(api, &err));
                    }
                    Some(Err(_)) => Vec::new(),
                };
                let share = input / (requests.len().max(1) as u64);
                let (mut outputs, mut cost) = (0u64, 0u64);
                for (model, cap) in &requests {
                    let output = limiter.estimate(*cap, 0);
                    outputs = outputs.saturating_add(output);
                    let each = output.saturating_add(share);
                    cost = cost.saturating_add(limiter.cost_estimate(Some(model), share, each));
                }
                batch_cost = Some(cost);
                Some(outputs.saturating_add(input))
            } else {
                Some(0)
            };
            let now = crate::auth::key::unix_now();
            let who = req.extensions().get::<Identity>();
            let model = req
                .extensions()
                .get::<RequestFacts>()
                .and_then(|f| f.model.as_deref());
            // The model the path chooses (Gemini, Bedrock) when the body names none.
            let in_path = match model {
                None if class.kind == RouteKind::Passthrough => {
                    agw_core::model::path_model(req.uri().path())
                }
                _ => None,
            };
            let model = model.or(in_path.as_deref());
            let cost = batch_cost
                .unwrap_or_else(|| limiter.cost_estimate(model, input, estimate.unwrap_or(0)));
            let ticket = match limiter.admit_reported(who, estimate, cost, now).await {
                Ok(t) => Arc::new(t),
                Err(rejection) => {
                    let mut res = error_response(api, &rejection.error());
                    rejection.headers(res.headers_mut());
                    // Who was refused, for the access log.
                    if let Some(who) = who {
                        res.extensions_mut().insert(who.clone());
                    }
                    return Ok(res);
                }
            };
            // Whether an abandoned request keeps its hold as its charge: one that generates
            // output and did not ask for a stream (read only where it decides anything).
            let keeps_hold = crate::usage::service::has_usage(class.kind)
                && class.kind != RouteKind::Embeddings
                && req
                    .extensions()
                    .get::<RequestFacts>()
                    .is_some_and(|f| !f.shape.stream);
            let (l, t) = (limiter.clone(), ticket.clone());
            UsageHooks::push(&mut req, move |report| {
                // Off the response path: queued to the limiter's settling task. The usage
                // layer has decided what the request used — a stream cut off before its final
                // usage included: its input and the output it delivered
                // (`UsageReport::estimated`). Without usage, the estimate — never less than
                // what the request held.
                let tokens = match (report.usage, report.estimate) {
                    (Some(u), _) => Some(u.total()),
                    (None, Some(e)) => Some(e.total().max(t.estimate())),
                    // A passthrough generation is charged what its response reports, and
                    // nothing without a report (as any passthrough call): its hold is given
                    // back.
                    (None, None) if generation.is_some() => Some(0),
                    (None, None) => None,
                };
                // The client went away before the response headers: the request was
                // admitted, so it has gone upstream, whose provider bills the input it read
                // (ops review: a client with a short timeout spent outside every budget). A
                // stream's output is given back: its generation stops with its connection
                // (Esc in Claude Code before the first token). A request that did not ask for
                // a stream keeps what it held: its provider may finish and bill it whole
                // (tenth red-team review: ten closed after 100 ms spent ~$9 charged as ~$0).
                if report.status == crate::usage::CLIENT_CLOSED {
                    if generation.is_some() {
                        // A passthrough call is charged what its response reports: none came.
                        l.settle_later(t.clone(), Some(0), Some(0), true);
                        return;
                    }
                    if keeps_hold {
                        l.settle_later(
                            t.clone(),
                            Some(t.estimate()),
                            Some(t.cost_estimate()),
                            true,
                        );
                        return;
                    }
                    let cost = l.cost_estimate(report.request_model.as_deref(), input, input);
                    l.settle_later(t.clone(), Some(input), Some(cost), true);
                    return;
                }
                let success = report.status.is_success();
                let mut cost = report.cost_micros.or(report.estimated_cost_micros);
                if generation.is_some() && report.usage.is_none() {
                    cost = Some(0);
                }
                if success && report.route == RouteKind::MessageBatches {
                    // Its requests' usage comes with their results: the estimate stays charged.
                    cost = Some(cost.unwrap_or(0).max(t.cost_estimate()));
                }
                l.settle_later(t.clone(), tokens, cost, success);
            });
            let mut res = inner.call(req).await?.map(Body::inner);
            ticket.headers(res.headers_mut());
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::manages_a_batch;
    use http::Method;

    #[test]
    fn batch_management_is_told_from_generation() {
        for (method, path, manages) in [
            (Method::GET, "/v1/messages/batches/msgbatch_01", true),
            (Method::DELETE, "/v1/messages/batches/msgbatch_01", true),
            (
                Method::POST,
                "/v1/messages/batches/msgbatch_01/cancel",
                true,
            ),
            (
                Method::POST,
                "/anthropic/v1/messages/batches/msgbatch_01/cancel",
                true,
            ),
            (Method::GET, "/v1/batches", true),
            (Method::GET, "/v1/batches/batch_1", true),
            (Method::POST, "/v1/batches/batch_1/cancel", true),
            // Creating a batch, or anything else, is not.
            (Method::POST, "/v1/batches", false),
            (Method::POST, "/v1/messages/batches/msgbatch_01", false),
            (
                Method::GET,
                "/v1/messages/batches/msgbatch_01/cancel",
                false,
            ),
            (Method::POST, "/v1/messages/batches//cancel", false),
            (Method::POST, "/v1/messages/batches/x/cancel/more", false),
            (Method::GET, "/v1/messages/batches/", false),
            (Method::POST, "/v1/chat/completions", false),
        ] {
            assert_eq!(manages_a_batch(&method, path), manages, "{method} {path}");
        }
    }

    /// Fourteenth review: OpenAI batches and Assistants runs ran outside every budget.
    #[test]
    fn work_whose_usage_agw_never_reads_is_told_apart() {
        use super::usage_unread;
        for (method, path, unread) in [
            (Method::POST, "/v1/batches", true),
            (Method::POST, "/oai/v1/Batches/", true),
            (Method::POST, "/v1/threads/runs", true),
            (Method::POST, "/v1/threads/thread_1/runs", true),
            (
                Method::POST,
                "/v1/threads/thread_1/runs/run_1/submit_tool_outputs",
                true,
            ),
            // Reading, listing, cancelling, and what generates nothing.
            (Method::GET, "/v1/batches", false),
            (Method::POST, "/v1/batches/batch_1/cancel", false),
            (Method::GET, "/v1/threads/thread_1/runs/run_1", false),
            (
                Method::POST,
                "/v1/threads/thread_1/runs/run_1/cancel",
                false,
            ),
            (Method::POST, "/v1/threads/thread_1/messages", false),
            (Method::POST, "/v1/threads", false),
            (Method::POST, "/v1/evals/eval_1/runs", true),
            (Method::POST, "/v1/fine_tuning/jobs", true),
            (
                Method::POST,
                "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
                true,
            ),
            (
                Method::POST,
                "/v1/projects/p/locations/us/batchPredictionJobs",
                true,
            ),
            (Method::POST, "/model-invocation-job", true),
            (Method::POST, "/v1/batch/jobs", true),
            (Method::POST, "/v1/projects/p/locations/us/tuningJobs", true),
            (Method::POST, "/model-customization-jobs", true),
            (Method::POST, "/evaluation-job", true),
            (Method::POST, "/async-invoke", true),
            (Method::POST, "/v1/videos", true),
            (
                Method::POST,
                "/v1beta/models/veo-3.0-generate-preview:predictLongRunning",
                true,
            ),
            (Method::GET, "/v1/batch/jobs", false),
            (Method::POST, "/v1/batch/jobs/j/cancel", false),
            (Method::GET, "/v1/fine_tuning/jobs", false),
            (Method::POST, "/v1/fine_tuning/jobs/j/cancel", false),
            (
                Method::POST,
                "/v1beta/models/gemini-2.5-flash:generateContent",
                false,
            ),
            (Method::POST, "/v1/chat/completions", false),
            (Method::POST, "/v1/files", false),
        ] {
            assert_eq!(
                usage_unread(&method, path).is_some(),
                unread,
                "{method} {path}"
            );
        }
    }
}
