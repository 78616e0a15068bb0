// Package emulator is an in-process stand-in for Meta's Conversions API endpoint,
// POST /{version}/{pixel_id}/events, strict enough that a request it accepts is one Meta
// would accept. Tests and `capirelay emulator` use it instead of graph.facebook.com.
//
// It reads the wire JSON itself (maps of json.RawMessage), never the sink's Go types, so a
// mistake in those types is caught rather than mirrored. Bracketed tags name the sections of
// shared/reference/capi.md each rule comes from.
//
// # Request
//
//   - Path version must look like v25.0; versions outside WithAPIVersions (default
//     v21.0–v26.0) get code 2635 (older) or 2500 (unknown) [D-use].
//   - Parameters are read from the query string and from a JSON body
//     (Content-Type application/json) or a form body (urlencoded or multipart, data= being a
//     JSON array string), as Meta takes both [D-use, C-node, C-gtm]. The query string wins
//     when a parameter is in both.
//   - access_token: missing gives 190; unknown gives 190/467 [G-err]. With WithAppSecret,
//     appsecret_proof = hex HMAC-SHA256(secret, token) is required, else code 100 [G-sec].
//     An unknown pixel, or a token for another pixel, gives 100/33 "Unsupported post
//     request. Object with ID … does not exist …" [C-rs]. Auth errors are HTTP 400, as Graph
//     sends them, with a WWW-Authenticate header on 190.
//   - data must be a non-empty array of at most 1,000 events [D-use, D-main];
//     partner_agent, when present, fewer than 23 characters with at least two letters [D-e2e].
//
// # Each event
//
// One invalid event rejects the whole request with HTTP 400 and nothing is stored [D-use].
// The error is code 100, is_transient false, with error_user_title, error_user_msg and
// message naming the event ("event 3: …") and error_data {"event_index":3} [I-ocu26].
//
//	rule                                                           subcode    source
//	element is a JSON object                                       2804924    [D-main]
//	event_name present                                             2804901    [D-srv]
//	event_time an integer (seconds)                                2804902    [D-srv]
//	event_time not older than 7 days                               2804003 *  [D-srv, C-rs]
//	event_time not ahead by more than WithFutureSkew (5 min)       2804903    [I-ads3]
//	action_source present                                          2804904    [D-srv]
//	action_source one of Meta's nine values                        2804905    [D-srv, C-py]
//	user_data present, an object, with ≥1 customer parameter       2804908    [D-cust]
//	website: event_source_url                                      2804906    [D-params, D-bp]
//	website: user_data.client_user_agent                           2804907    [D-params, D-bp]
//	app: app_data object                                           2804914    [D-srv]
//	app: advertiser_tracking_enabled and extinfo present           2804916    [D-params]
//	app_data (any event): an object; tracking flags boolean or 0/1;
//	  extinfo 16 strings, [0] a2 or i2, [4] (OS version) non-empty 2804916    [D-params]
//	business_messaging: messaging_channel present                  2804917    [D-bm]
//	messaging_channel one of whatsapp, messenger, instagram        2804917    [D-bm]
//	business_messaging ids: messenger page_id+page_scoped_user_id,
//	  whatsapp whatsapp_business_account_id+ctwa_clid,
//	  instagram ig_sid                                             2804918    [D-bm]
//	customer_segmentation (top level or in custom_data) Meta's enum 2804919    [D-srv]
//	original_event_data a non-empty object; event_time in seconds  2804926    [D-oed]
//	em ph fn ln db ge ct st zp country: string or list of strings  2804925    [D-cust]
//	  … each a lowercase hex SHA-256 (or MD5, or param-builder)    2804910    [D-cust, C-pb]
//	lead_id 15–17 digits                                           2804913    [D-crm]
//	fb_login_id an integer                                         2804928    [D-cust]
//	not only ct+country+st+zp+ge+ua, db+ua, fn+ge or ln+ge         2804909    [D-bp]
//	custom_data an object; currency 3 letters; value, predicted_ltv,
//	  net_revenue numbers; contents an array of objects            2804915    [D-std]
//	delivery_category (custom_data and contents) in_store,
//	  curbside or home_delivery                                    2804927    [D-std]
//	Purchase has currency and value                                2804911    [D-std]
//	data_processing_options only "LDU"; then country 0/1 required,
//	  state 0 or 1000–1013, required without client_ip_address,
//	  non-zero only with country 1                                 2804912    [D-ldu, D-srv]
//	request: data missing or empty / >1000 / partner_agent / body  2804920-23
//
// (*) Only 2804003, 33 and 467 are Meta's documented or observed subcodes; Meta's subcodes
// for the other rules are unknown, so the emulator assigns its own 28049xx values. Clients
// must classify on code 100, which is what Meta guarantees.
//
// Rules Meta states but the emulator does not check: event_source_url matching the verified
// domain, the 62-day window for physical_store (unconfirmed), CRM events being later than
// the lead's creation, the contents of extinfo's slots beyond version and OS version, that
// never-hashed identifiers really are unhashed, and dedup (events are kept as sent).
// attribution_data is neither checked nor produced by the sink.
//
// # Success and inspection
//
// A valid request gets 200 {"events_received":N,"messages":[],"fbtrace_id":"…"} [D-e2e,
// D-ref]. Accepted events are kept with their pixel, test_event_code and partner_agent:
// Received and Reset in Go, GET /_emulator/events?pixel_id=… and GET /_emulator/stats over
// HTTP. ListenAndServe runs a Server until its context ends.
//
// # Test events
//
// Meta routes events sent with test_event_code to Events Manager's Test Events tab but does
// not drop them: they count in the dataset too [D-use]. So the emulator stores them like any
// other event, marked: Received.Test is true and the listing shows "test": true. TestEvents
// (Go) and GET /_emulator/events?test=1 list only them, as the Test Events tab does;
// ?test=0 lists only the others; &test_event_code=CODE narrows to one code.
//
// # Fault injection
//
// FaultConfig describes the faults; it is set by WithFaults, by SetFaults/ClearFaults at run
// time, or over HTTP: POST (or PUT) /_emulator/faults with the JSON of a FaultConfig replaces
// the configuration, GET shows it with its progress (FaultState), DELETE clears it. Unknown
// JSON fields are refused, so a misspelt fault cannot silently inject nothing.
//
//	kind                  answer                                                    stored
//	transient             500, code 1 or 2, is_transient                            no
//	rate_limit            400 code 17 or 429 code 80004, subcode 2446079,           no
//	                        Retry-After, X-Business-Use-Case-Usage, X-App-Usage
//	auth                  400, code 190/463 (expired), WWW-Authenticate             no
//	permission            400 code 10 or 403 code 200                               no
//	timeout               held until the client gives up, else 504 after the hold   no
//	timeout_after_accept  stored, then held like timeout                            yes
//	outage                connection reset (RST), or 503 code 2 in "503" mode       no
//
// Meta documents the codes, not the HTTP statuses of throttles and permission errors [G-err,
// G-rl]; the emulator alternates between the plausible ones so that clients must classify on
// the code. Which of a kind's variants a request gets is drawn from the same RNG.
//
// A timed-out request leaves the client unable to tell whether Meta processed it; real Meta
// may have. timeout models "it never arrived" and timeout_after_accept "it was processed but
// the answer was lost", the window in which a retry double-counts (server-to-server dedup
// by event_id is unconfirmed [capi.md §7]).
//
// Order and scope: an outage and latency hit every request for a targeted pixel as soon as
// its body is read (the backend is down or slow whoever calls); error and timeout faults are
// delivered only after authentication and the request-level checks, so a test's own
// mistakes still get their real answer, and before event validation, as a failing Meta
// validates nothing. Latency and timeouts end early when the client's request context does
// (nothing is stored then; Stats.Abandoned counts it), and when Serve's context ends.
//
// Decisions come from a seeded PCG (WithFaultSeed, FaultConfig.Seed; default seed 1), one
// decision per request to a targeted pixel, taken in arrival order: sequential requests get
// the same faults run after run; concurrent ones only as far as their arrival order repeats.
// Requests to untargeted pixels draw nothing. Fault windows (outage, rate_limit_for) use their
// own clock, WithFaultClock, because tests usually freeze WithClock. Stats.Faults and
// FaultState.Injected count injected faults by kind.
//
// The lower-level Fault hook still exists: it sees requests that passed everything above and
// may answer them itself.
package emulator
