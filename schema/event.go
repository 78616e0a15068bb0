package schema

// Kind says which published record type an Event was decoded from.
type Kind uint8

const (
	// KindWeb is a browser-side event forwarded by a web backend (Avro record WebEvent).
	KindWeb Kind = iota + 1
	// KindOffline is a down-funnel event emitted by a CRM or a store system (Avro record OfflineEvent).
	KindOffline
)

func (k Kind) String() string {
	switch k {
	case KindWeb:
		return "web"
	case KindOffline:
		return "offline"
	}
	return "unknown"
}

// Event is the one internal type every record decodes into, whatever its topic and writer
// schema. Personal data in User is as published: raw or already hashed; normalizing and
// hashing is the sink's job, because only the sink knows Meta's rules.
type Event struct {
	Kind      Kind
	EventID   string
	EventName string
	// EventTime is Unix seconds, as Meta takes it. Publishers that write milliseconds are
	// converted by the decoder (a value above 1e12 is taken as milliseconds).
	EventTime int64
	PixelID   string
	// ActionSource is Meta's action_source. Web events default to "website"; offline events
	// carry what the CRM wrote (physical_store, system_generated, phone_call, …).
	ActionSource   string
	EventSourceURL string
	ReferrerURL    string
	OptOut         bool

	User    UserData
	Custom  CustomData
	Consent Consent

	// CRMName is the CRM that emitted an offline event (Salesforce, HubSpot, …). When set, the
	// sink sends custom_data.event_source "crm" and lead_event_source CRMName.
	CRMName string

	// CustomerSegmentation is Meta's customer_segmentation enum as published
	// (new_customer_to_business, …); the sink checks it and decides where it goes on the wire.
	CustomerSegmentation string
	// MessagingChannel is whatsapp, messenger or instagram for action_source
	// business_messaging.
	MessagingChannel string
	// OriginalEvent links a delayed event to the earlier event it follows up; nil when absent.
	OriginalEvent *OriginalEventData
	// App is app_data, required by Meta for action_source app; nil when absent.
	App *AppData
}

// OriginalEventData is Meta's original_event_data. Every field is optional.
type OriginalEventData struct {
	EventName string
	// EventTime is Unix seconds; 0 when unknown. Milliseconds are converted as for EventTime.
	EventTime int64
	OrderID   string
	EventID   string
}

// AppData is Meta's app_data for app events.
type AppData struct {
	// AdvertiserTrackingEnabled and ApplicationTrackingEnabled are nil when not recorded:
	// "unknown" must not silently become "disabled".
	AdvertiserTrackingEnabled  *bool
	ApplicationTrackingEnabled *bool
	// ExtInfo is Meta's positional extended device information (16 strings starting with
	// "a2" or "i2"), kept as published, empty slots included; the sink checks its shape.
	ExtInfo              []string
	CampaignIDs          string
	InstallReferrer      string
	InstallerPackage     string
	URLSchemes           []string
	WindowsAttributionID string
	VendorID             string
}

// UserData holds the customer information parameters as published. Multi-valued fields are
// slices because Meta takes arrays for them.
type UserData struct {
	Emails       []string
	Phones       []string
	FirstNames   []string
	LastNames    []string
	DatesOfBirth []string
	Genders      []string
	Cities       []string
	States       []string
	Zips         []string
	Countries    []string
	ExternalIDs  []string

	ClientIPAddress string
	ClientUserAgent string
	FBC             string
	FBP             string
	LeadID          string

	// The remaining identifiers are never hashed [capi.md §3]: app, Facebook Login and
	// business-messaging ids.
	SubscriptionID            string
	FBLoginID                 string
	AnonID                    string
	MADID                     string
	PageID                    string
	PageScopedUserID          string
	CTWAClid                  string
	IGAccountID               string
	IGSID                     string
	WhatsAppBusinessAccountID string
}

// CustomData holds the standard custom_data parameters the published schemas carry.
type CustomData struct {
	// Value is nil when the record had no value (distinct from a value of 0).
	Value       *float64
	Currency    string
	OrderID     string
	ItemNumber  string
	ContentIDs  []string
	ContentType string
	Contents    []Content

	ContentName     string
	ContentCategory string
	// PredictedLTV and NetRevenue are nil when absent, like Value.
	PredictedLTV *float64
	NetRevenue   *float64
	// NumItems is 0 when absent.
	NumItems         int64
	SearchString     string
	Status           string
	DeliveryCategory string
	// Store is store_data of a physical_store conversion; nil when absent.
	Store *StoreData
}

// StoreData identifies the store of an offline conversion.
type StoreData struct {
	StorePageID string
	BrandPageID string
	StoreCode   string
}

// Content is one line of custom_data.contents.
type Content struct {
	ID       string
	Quantity int64
	// ItemPrice is nil when the record had no price.
	ItemPrice        *float64
	Title            string
	Description      string
	Brand            string
	Category         string
	DeliveryCategory string
}

// Consent is the person's choice as recorded by the publisher.
type Consent struct {
	// Known is false when the record carried no consent at all; what that means is the
	// processor's configuration (require_consent), not the decoder's decision.
	Known bool
	// AdsAllowed is the person's consent to use the event for advertising.
	AdsAllowed bool
	// LimitedDataUse asks Meta to apply Limited Data Use (data_processing_options ["LDU"]).
	LimitedDataUse bool
	// LDUCountry and LDUState are Meta's data_processing_options_country/state codes
	// (0 lets Meta geolocate).
	LDUCountry int32
	LDUState   int32
}
