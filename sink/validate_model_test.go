package sink

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/capirelay/capirelay/schema"
)

func validExtInfo() []string {
	return []string{"a2", "com.shop.app", "42", "4.2", "14", "Pixel 8", "en_US", "CET", "", "1080", "2400", "2.75", "8", "", "", "Europe/Paris"}
}

// Rules added with the full event model; each case mutates validWebEvent.
func TestValidateFullModel(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	app := func(e *Event) {
		e.ActionSource, e.EventSourceURL = "app", ""
		e.App = &AppData{AdvertiserTrackingEnabled: boolp(false), ExtInfo: validExtInfo()}
	}
	bm := func(channel string) func(*Event) {
		return func(e *Event) {
			e.ActionSource, e.EventSourceURL, e.MessagingChannel = "business_messaging", "", channel
		}
	}
	ldu := func(country, state *int32) func(*Event) {
		return func(e *Event) {
			e.DataProcessingOptions = []string{"LDU"}
			e.DataProcessingOptionsCountry, e.DataProcessingOptionsState = country, state
		}
	}
	tests := []struct {
		name   string
		mutate func(*Event)
		reason string
		field  string
	}{
		{"app event", app, "", ""},
		{"app without app_data", func(e *Event) { app(e); e.App = nil }, ReasonAppMissingAppData, "app_data"},
		{"app without advertiser_tracking_enabled", func(e *Event) { app(e); e.App.AdvertiserTrackingEnabled = nil }, ReasonInvalidAppData, "app_data.advertiser_tracking_enabled"},
		{"app without extinfo", func(e *Event) { app(e); e.App.ExtInfo = nil }, ReasonInvalidAppData, "app_data.extinfo"},
		{"extinfo short", func(e *Event) { app(e); e.App.ExtInfo = e.App.ExtInfo[:15] }, ReasonInvalidAppData, "app_data.extinfo"},
		{"extinfo long", func(e *Event) { app(e); e.App.ExtInfo = append(e.App.ExtInfo, "") }, ReasonInvalidAppData, "app_data.extinfo"},
		{"extinfo version", func(e *Event) { app(e); e.App.ExtInfo[0] = "A2" }, ReasonInvalidAppData, "app_data.extinfo"},
		{"extinfo os version", func(e *Event) { app(e); e.App.ExtInfo[4] = "" }, ReasonInvalidAppData, "app_data.extinfo"},
		{"extinfo checked on web events too", func(e *Event) { e.App = &AppData{ExtInfo: []string{"i2"}} }, ReasonInvalidAppData, "app_data.extinfo"},
		{"whatsapp", func(e *Event) {
			bm("whatsapp")(e)
			e.User.WhatsAppBusinessAccountID, e.User.CTWAClid = "104612345678901", "ARAk"
		}, "", ""},
		{"business_messaging without channel", bm(""), ReasonMissingMessagingChannel, "messaging_channel"},
		{"unknown channel", bm("sms"), ReasonUnknownMessagingChannel, "messaging_channel"},
		{"channel in wrong case", bm("WhatsApp"), ReasonUnknownMessagingChannel, "messaging_channel"},
		{"whatsapp without waba", func(e *Event) { bm("whatsapp")(e); e.User.CTWAClid = "ARAk" }, ReasonMessagingMissingIDs, "user_data.whatsapp_business_account_id"},
		{"whatsapp without ctwa_clid", func(e *Event) { bm("whatsapp")(e); e.User.WhatsAppBusinessAccountID = "1" }, ReasonMessagingMissingIDs, "user_data.ctwa_clid"},
		{"messenger", func(e *Event) { bm("messenger")(e); e.User.PageID, e.User.PageScopedUserID = "1", "2" }, "", ""},
		{"messenger without psid", func(e *Event) { bm("messenger")(e); e.User.PageID = "1" }, ReasonMessagingMissingIDs, "user_data.page_scoped_user_id"},
		{"instagram", func(e *Event) { bm("instagram")(e); e.User.IGSID = "5" }, "", ""},
		{"instagram without ig_sid", func(e *Event) { bm("instagram")(e); e.User.IGAccountID = "4" }, ReasonMessagingMissingIDs, "user_data.ig_sid"},
		{"channel on a web event is only checked for spelling", func(e *Event) { e.MessagingChannel = "messenger" }, "", ""},
		{"messaging ids alone are customer information", func(e *Event) {
			bm("messenger")(e)
			e.User = UserData{PageID: "1", PageScopedUserID: "2"}
		}, "", ""},
		{"segmentation top level", func(e *Event) { e.CustomerSegmentation = "customer_in_loyalty_program" }, "", ""},
		{"segmentation unknown", func(e *Event) { e.CustomerSegmentation = "vip" }, ReasonInvalidSegmentation, "customer_segmentation"},
		{"segmentation unknown in custom_data", func(e *Event) { e.Custom.CustomerSegmentation = "vip" }, ReasonInvalidSegmentation, "custom_data.customer_segmentation"},
		{"delivery category", func(e *Event) { e.Custom.DeliveryCategory = "curbside" }, "", ""},
		{"delivery category unknown", func(e *Event) { e.Custom.DeliveryCategory = "drone" }, ReasonInvalidDeliveryCategory, "custom_data.delivery_category"},
		{"content delivery category unknown", func(e *Event) {
			e.Custom.Contents = []Content{{ID: "a", Quantity: 1, DeliveryCategory: "Curbside"}}
		}, ReasonInvalidDeliveryCategory, "custom_data.contents.delivery_category"},
		{"predicted_ltv NaN", func(e *Event) { e.Custom.PredictedLTV = f64(nan()) }, ReasonInvalidValue, "custom_data"},
		{"original event", func(e *Event) {
			e.OriginalEventData = &OriginalEventData{EventName: "Lead", EventTime: validNow.Unix() - 86400}
		}, "", ""},
		{"original event empty", func(e *Event) { e.OriginalEventData = &OriginalEventData{} }, ReasonInvalidOriginalEvent, "original_event_data"},
		{"original event millis", func(e *Event) { e.OriginalEventData = &OriginalEventData{EventTime: validNow.UnixMilli()} }, ReasonInvalidOriginalEvent, "original_event_data.event_time"},
		{"fb_login_id", func(e *Event) { e.User.FBLoginID = "100200300" }, "", ""},
		{"fb_login_id not digits", func(e *Event) { e.User.FBLoginID = json.Number("1e5") }, ReasonInvalidFBLoginID, "user_data.fb_login_id"},
		{"lead_id 14 digits", func(e *Event) { e.User.LeadID = "12345678901234" }, ReasonInvalidLeadID, "user_data.lead_id"},
		{"lead_id 18 digits", func(e *Event) { e.User.LeadID = "123456789012345678" }, ReasonInvalidLeadID, "user_data.lead_id"},
		{"lead_id 15 digits", func(e *Event) { e.User.LeadID = "123456789012345" }, "", ""},
		{"ldu country 2", ldu(i32(2), i32(0)), ReasonInvalidDPO, "data_processing_options_country"},
		{"ldu state out of range", ldu(i32(1), i32(1014)), ReasonInvalidDPO, "data_processing_options_state"},
		{"ldu state without us", ldu(i32(0), i32(1000)), ReasonInvalidDPO, "data_processing_options_state"},
		{"ldu no state, ip present", ldu(i32(1), nil), "", ""},
		{"ldu no state, no ip", func(e *Event) { ldu(i32(1), nil)(e); e.User.ClientIPAddress = "" }, ReasonInvalidDPO, "data_processing_options_state"},
		{"ldu california", ldu(i32(1), i32(1000)), "", ""},
		{"ldu rhode island", ldu(i32(1), i32(1013)), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := validWebEvent()
			tt.mutate(&ev)
			err := Validate(&ev, validNow, ValidateOptions{})
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Reason != tt.reason || ie.Field != tt.field {
				t.Fatalf("Validate = %v, want %s/%s", err, tt.reason, tt.field)
			}
		})
	}
}

func TestBuildFullModel(t *testing.T) {
	src := schema.Event{
		EventName: "Lead", EventTime: buildNow.Unix(), ActionSource: "business_messaging",
		MessagingChannel: " Messenger ", CustomerSegmentation: "EXISTING_CUSTOMER_TO_MEDIUM",
		User: schema.UserData{
			PageID: " 1 ", PageScopedUserID: "2", SubscriptionID: "s", AnonID: "a", MADID: "m",
			CTWAClid: "c", IGAccountID: "ig", IGSID: "igs", WhatsAppBusinessAccountID: "w", FBLoginID: "77",
		},
	}
	ev, drops := Build(src, BuildOptions{Now: buildNow})
	if drops != nil {
		t.Fatalf("drops = %+v", drops)
	}
	want := UserData{
		PageID: "1", PageScopedUserID: "2", SubscriptionID: "s", AnonID: "a", MADID: "m",
		CTWAClid: "c", IGAccountID: "ig", IGSID: "igs", WhatsAppBusinessAccountID: "w", FBLoginID: "77",
	}
	if !reflect.DeepEqual(ev.User, want) {
		t.Fatalf("never-hashed ids changed:\n got %+v\nwant %+v", ev.User, want)
	}
	if ev.MessagingChannel != "messenger" || ev.Custom == nil || ev.Custom.CustomerSegmentation != "existing_customer_to_medium" || ev.CustomerSegmentation != "" {
		t.Fatalf("channel %q, segmentation %+v / %q", ev.MessagingChannel, ev.Custom, ev.CustomerSegmentation)
	}
	if err := Validate(&ev, buildNow, ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Top-level placement, on request.
	ev, _ = Build(src, BuildOptions{Now: buildNow, SegmentationTopLevel: true})
	if ev.CustomerSegmentation != "existing_customer_to_medium" || ev.Custom != nil {
		t.Fatalf("top-level segmentation: %q, custom %+v", ev.CustomerSegmentation, ev.Custom)
	}

	bad := schema.Event{
		EventName: "Lead", EventTime: buildNow.Unix(), ActionSource: "chat",
		MessagingChannel: "sms", CustomerSegmentation: "vip",
		User: schema.UserData{FBLoginID: "12ab", PageID: "1"},
		Custom: schema.CustomData{DeliveryCategory: "drone", PredictedLTV: f64(nan()),
			Contents: []schema.Content{{ID: "a", DeliveryCategory: "teleport"}}},
	}
	ev, drops = Build(bad, BuildOptions{Now: buildNow})
	wantDrops := []Dropped{
		{"fb_login_id", DropInvalidFBLoginID},
		{"messaging_channel", DropUnknownMessagingChannel},
		{"customer_segmentation", DropUnknownSegmentation},
		{"predicted_ltv", DropInvalidNumber},
		{"delivery_category", DropInvalidDeliveryCategory},
		{"contents.delivery_category", DropInvalidDeliveryCategory},
	}
	if !reflect.DeepEqual(drops, wantDrops) {
		t.Fatalf("drops =\n%+v\nwant\n%+v", drops, wantDrops)
	}
	if _, err := json.Marshal(ev); err != nil {
		t.Fatalf("event with drops must still encode: %v", err)
	}
}

// Build's app_data must not share memory with the publisher's event.
func TestBuildAppDataIsCopied(t *testing.T) {
	ext := validExtInfo()
	ate := true
	src := schema.Event{EventName: "X", EventTime: buildNow.Unix(), ActionSource: "app",
		App: &schema.AppData{AdvertiserTrackingEnabled: &ate, ExtInfo: ext, URLSchemes: []string{"s"}}}
	ev, _ := Build(src, BuildOptions{Now: buildNow})
	ext[0], ate, src.App.URLSchemes[0] = "zz", false, "t"
	if ev.App.ExtInfo[0] != "a2" || !*ev.App.AdvertiserTrackingEnabled || ev.App.URLSchemes[0] != "s" {
		t.Fatalf("app_data aliases the source: %+v", ev.App)
	}
}

func BenchmarkBuildAllFields(b *testing.B) {
	var src schema.Event
	for _, gc := range goldenCases() {
		if gc.file == "web_purchase.json" {
			src = gc.ev
		}
	}
	src.App = &schema.AppData{AdvertiserTrackingEnabled: boolp(true), ExtInfo: iosExtInfo()}
	src.OriginalEvent = &schema.OriginalEventData{EventName: "AddToCart", EventTime: buildNow.Unix() - 600}
	opts := BuildOptions{Now: buildNow, Hasher: NewHasher()}
	b.ReportAllocs()
	for b.Loop() {
		if ev, _ := Build(src, opts); ev.App == nil {
			b.Fatal("no app_data")
		}
	}
}
func nan() float64 { return math.NaN() }
