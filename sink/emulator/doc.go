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
//	em ph fn ln db ge ct st zp country: string or list of strings  2804925    [D-cust]
//	  … each a lowercase hex SHA-256 (or MD5, or param-builder)    2804910    [D-cust, C-pb]
//	lead_id 15–17 digits                                           2804913    [D-crm]
//	not only ct+country+st+zp+ge+ua, db+ua, fn+ge or ln+ge         2804909    [D-bp]
//	custom_data an object; currency 3 letters; value a number      2804915    [D-std]
//	Purchase has currency and value                                2804911    [D-std]
//	data_processing_options only "LDU"; then country 0/1 required,
//	  state 0 or 1000–1013                                         2804912    [D-ldu]
//	request: data missing or empty / >1000 / partner_agent / body  2804920-23
//
// (*) Only 2804003, 33 and 467 are Meta's documented or observed subcodes; Meta's subcodes
// for the other rules are unknown, so the emulator assigns its own 28049xx values. Clients
// must classify on code 100, which is what Meta guarantees.
//
// Rules Meta states but the emulator does not check: event_source_url matching the verified
// domain, the 62-day window for physical_store (unconfirmed), CRM events being later than
// the lead's creation, app_data's extinfo layout, and dedup (events are kept as sent).
//
// # Success and inspection
//
// A valid request gets 200 {"events_received":N,"messages":[],"fbtrace_id":"…"} [D-e2e,
// D-ref]. Accepted events are kept with their pixel, test_event_code and partner_agent:
// Received and Reset in Go, GET /_emulator/events?pixel_id=… and GET /_emulator/stats over
// HTTP. Fault is the seam for fault injection; ListenAndServe runs a Server until its
// context ends.
package emulator
