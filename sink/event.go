package sink

import "encoding/json"

// Event is one server event as the Conversions API takes it in the request's "data" array.
// Personal data in User is already normalized and hashed: an Event never holds raw PII,
// which is why it is safe to keep in memory, batch, retry and log by id.
type Event struct {
	EventName      string `json:"event_name"`
	EventTime      int64  `json:"event_time"`
	EventID        string `json:"event_id,omitempty"`
	ActionSource   string `json:"action_source"`
	EventSourceURL string `json:"event_source_url,omitempty"`
	ReferrerURL    string `json:"referrer_url,omitempty"`
	OptOut         bool   `json:"opt_out,omitempty"`
	// MessagingChannel goes with action_source business_messaging [D-bm].
	MessagingChannel string `json:"messaging_channel,omitempty"`
	// CustomerSegmentation is set here only with SegmentationTopLevel; by default Build puts
	// it in custom_data, where Meta's only JSON example has it (see BuildOptions).
	CustomerSegmentation string `json:"customer_segmentation,omitempty"`

	User   UserData    `json:"user_data"`
	Custom *CustomData `json:"custom_data,omitempty"`
	// App is app_data, required for action_source app [D-srv].
	App               *AppData           `json:"app_data,omitempty"`
	OriginalEventData *OriginalEventData `json:"original_event_data,omitempty"`

	// DataProcessingOptions is nil when LDU is not requested; ["LDU"] when it is.
	DataProcessingOptions        []string `json:"data_processing_options,omitempty"`
	DataProcessingOptionsCountry *int32   `json:"data_processing_options_country,omitempty"`
	DataProcessingOptionsState   *int32   `json:"data_processing_options_state,omitempty"`

	// custom is where BuildInto puts custom_data and what hangs off it, so that an Event
	// reused for event after event (the relay recycles them) allocates none of it.
	custom customAlloc
}

// UserData is user_data on the wire. The slice fields hold lowercase-hex SHA-256 digests (or
// values that arrived already hashed); the string fields are the parameters Meta says never
// to hash.
type UserData struct {
	Em         []string `json:"em,omitempty"`
	Ph         []string `json:"ph,omitempty"`
	Fn         []string `json:"fn,omitempty"`
	Ln         []string `json:"ln,omitempty"`
	Db         []string `json:"db,omitempty"`
	Ge         []string `json:"ge,omitempty"`
	Ct         []string `json:"ct,omitempty"`
	St         []string `json:"st,omitempty"`
	Zp         []string `json:"zp,omitempty"`
	Country    []string `json:"country,omitempty"`
	ExternalID []string `json:"external_id,omitempty"`

	ClientIPAddress string `json:"client_ip_address,omitempty"`
	ClientUserAgent string `json:"client_user_agent,omitempty"`
	FBC             string `json:"fbc,omitempty"`
	FBP             string `json:"fbp,omitempty"`
	SubscriptionID  string `json:"subscription_id,omitempty"`
	// FBLoginID is Meta's app-scoped integer id, sent as a JSON number; Build only sets it
	// to digits, since an invalid json.Number would fail encoding of the whole batch.
	FBLoginID json.Number `json:"fb_login_id,omitempty"`
	// LeadID is Meta's 15–17 digit leadgen id; sent as a JSON number as Meta's examples do.
	LeadID json.Number `json:"lead_id,omitempty"`
	AnonID string      `json:"anon_id,omitempty"`
	MADID  string      `json:"madid,omitempty"`
	// Business messaging identifiers [D-bm]: Messenger, WhatsApp and Instagram.
	PageID                    string `json:"page_id,omitempty"`
	PageScopedUserID          string `json:"page_scoped_user_id,omitempty"`
	CTWAClid                  string `json:"ctwa_clid,omitempty"`
	IGAccountID               string `json:"ig_account_id,omitempty"`
	IGSID                     string `json:"ig_sid,omitempty"`
	WhatsAppBusinessAccountID string `json:"whatsapp_business_account_id,omitempty"`
}

// CustomData is custom_data on the wire.
type CustomData struct {
	Value           *float64  `json:"value,omitempty"`
	Currency        string    `json:"currency,omitempty"`
	OrderID         string    `json:"order_id,omitempty"`
	ItemNumber      string    `json:"item_number,omitempty"`
	ContentIDs      []string  `json:"content_ids,omitempty"`
	ContentType     string    `json:"content_type,omitempty"`
	Contents        []Content `json:"contents,omitempty"`
	ContentName     string    `json:"content_name,omitempty"`
	ContentCategory string    `json:"content_category,omitempty"`
	PredictedLTV    *float64  `json:"predicted_ltv,omitempty"`
	NetRevenue      *float64  `json:"net_revenue,omitempty"`
	NumItems        int64     `json:"num_items,omitempty"`
	SearchString    string    `json:"search_string,omitempty"`
	Status          string    `json:"status,omitempty"`
	// DeliveryCategory is in_store, curbside or home_delivery [D-std].
	DeliveryCategory string `json:"delivery_category,omitempty"`
	// CustomerSegmentation is Build's default placement (see BuildOptions).
	CustomerSegmentation string     `json:"customer_segmentation,omitempty"`
	StoreData            *StoreData `json:"store_data,omitempty"`
	EventSource          string     `json:"event_source,omitempty"`
	LeadEventSource      string     `json:"lead_event_source,omitempty"`
}

// Content is one element of custom_data.contents.
type Content struct {
	ID               string   `json:"id"`
	Quantity         int64    `json:"quantity,omitempty"`
	ItemPrice        *float64 `json:"item_price,omitempty"`
	Title            string   `json:"title,omitempty"`
	Description      string   `json:"description,omitempty"`
	Brand            string   `json:"brand,omitempty"`
	Category         string   `json:"category,omitempty"`
	DeliveryCategory string   `json:"delivery_category,omitempty"`
}

// StoreData is custom_data.store_data of an offline event [D-off].
type StoreData struct {
	StorePageID string `json:"store_page_id,omitempty"`
	BrandPageID string `json:"brand_page_id,omitempty"`
	StoreCode   string `json:"store_code,omitempty"`
}

// AppData is app_data [D-srv, D-params]. The tracking flags are pointers because false is a
// value Meta needs to see, and advertiser_tracking_enabled is required for app events.
type AppData struct {
	AdvertiserTrackingEnabled  *bool    `json:"advertiser_tracking_enabled,omitempty"`
	ApplicationTrackingEnabled *bool    `json:"application_tracking_enabled,omitempty"`
	ExtInfo                    []string `json:"extinfo,omitempty"`
	CampaignIDs                string   `json:"campaign_ids,omitempty"`
	InstallReferrer            string   `json:"install_referrer,omitempty"`
	InstallerPackage           string   `json:"installer_package,omitempty"`
	URLSchemes                 []string `json:"url_schemes,omitempty"`
	WindowsAttributionID       string   `json:"windows_attribution_id,omitempty"`
	VendorID                   string   `json:"vendor_id,omitempty"`
}

// OriginalEventData links a delayed event to the event it follows up [D-oed]. Every field
// is optional.
type OriginalEventData struct {
	EventName string `json:"event_name,omitempty"`
	EventTime int64  `json:"event_time,omitempty"`
	OrderID   string `json:"order_id,omitempty"`
	EventID   string `json:"event_id,omitempty"`
}

// Request is the JSON body of POST /{version}/{pixel_id}/events. access_token and
// appsecret_proof are added by the Sender, never stored here, so a Request can be logged.
type Request struct {
	// Data points at the events so that a batch, its retries and its halves share them:
	// an event is built once and never copied on its way to Meta.
	Data          []*Event `json:"data"`
	PartnerAgent  string   `json:"partner_agent,omitempty"`
	TestEventCode string   `json:"test_event_code,omitempty"`
}

// Response is the body Meta answers a successful request with.
type Response struct {
	EventsReceived int      `json:"events_received"`
	Messages       []string `json:"messages"`
	FBTraceID      string   `json:"fbtrace_id"`
}

// GraphError is the "error" object of a Graph API error body.
type GraphError struct {
	Message     string          `json:"message"`
	Type        string          `json:"type,omitempty"`
	Code        int             `json:"code"`
	Subcode     int             `json:"error_subcode,omitempty"`
	IsTransient bool            `json:"is_transient,omitempty"`
	UserTitle   string          `json:"error_user_title,omitempty"`
	UserMessage string          `json:"error_user_msg,omitempty"`
	ErrorData   json.RawMessage `json:"error_data,omitempty"`
	FBTraceID   string          `json:"fbtrace_id,omitempty"`
}

// ErrorBody is the whole body of a Graph API error answer: {"error": {...}}.
type ErrorBody struct {
	Error GraphError `json:"error"`
}
