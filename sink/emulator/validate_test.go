package emulator

import (
	"net/http"
	"testing"
)

func extinfo() []string {
	return []string{"i2", "com.shop.app", "1.0", "1.0 long", "17.4", "iPhone15,2", "en_US", "CET", "", "1179", "2556", "3", "6", "", "", "Europe/Paris"}
}

// Rules added with the full event model; each case mutates one valid event.
func TestFullModelRules(t *testing.T) {
	user := func(e map[string]any) map[string]any { return e["user_data"].(map[string]any) }
	custom := func(e map[string]any) map[string]any { return e["custom_data"].(map[string]any) }
	app := func(e map[string]any) {
		e["action_source"] = "app"
		delete(e, "event_source_url")
		e["app_data"] = map[string]any{"advertiser_tracking_enabled": false, "application_tracking_enabled": true, "extinfo": extinfo()}
	}
	messaging := func(channel string, ids map[string]any) func(map[string]any) {
		return func(e map[string]any) {
			e["action_source"] = "business_messaging"
			delete(e, "event_source_url")
			e["messaging_channel"] = channel
			for k, v := range ids {
				user(e)[k] = v
			}
		}
	}
	tests := []struct {
		name    string
		mutate  func(map[string]any)
		subcode int
	}{
		{"app with app_data", app, 0},
		{"app flags as 0/1", func(e map[string]any) {
			app(e)
			e["app_data"].(map[string]any)["advertiser_tracking_enabled"] = 1
		}, 0},
		{"app flag a string", func(e map[string]any) {
			app(e)
			e["app_data"].(map[string]any)["advertiser_tracking_enabled"] = "yes"
		}, SubcodeInvalidAppData},
		{"app without advertiser_tracking_enabled", func(e map[string]any) {
			app(e)
			delete(e["app_data"].(map[string]any), "advertiser_tracking_enabled")
		}, SubcodeInvalidAppData},
		{"app without extinfo", func(e map[string]any) { app(e); delete(e["app_data"].(map[string]any), "extinfo") }, SubcodeInvalidAppData},
		{"extinfo 15 slots", func(e map[string]any) { app(e); e["app_data"].(map[string]any)["extinfo"] = extinfo()[:15] }, SubcodeInvalidAppData},
		{"extinfo bad version", func(e map[string]any) {
			app(e)
			x := extinfo()
			x[0] = "i1"
			e["app_data"].(map[string]any)["extinfo"] = x
		}, SubcodeInvalidAppData},
		{"extinfo android", func(e map[string]any) {
			app(e)
			x := extinfo()
			x[0] = "a2"
			e["app_data"].(map[string]any)["extinfo"] = x
		}, 0},
		{"extinfo without os version", func(e map[string]any) {
			app(e)
			x := extinfo()
			x[4] = ""
			e["app_data"].(map[string]any)["extinfo"] = x
		}, SubcodeInvalidAppData},
		{"extinfo not strings", func(e map[string]any) { app(e); e["app_data"].(map[string]any)["extinfo"] = []int{1} }, SubcodeInvalidAppData},
		{"app_data on web event checked too", func(e map[string]any) { e["app_data"] = map[string]any{"extinfo": []string{"i2"}} }, SubcodeInvalidAppData},
		{"app_data not object", func(e map[string]any) { e["app_data"] = "x" }, SubcodeInvalidAppData},
		{"whatsapp", messaging("whatsapp", map[string]any{"whatsapp_business_account_id": "3000003", "ctwa_clid": "ARAkLk"}), 0},
		{"whatsapp without ctwa_clid", messaging("whatsapp", map[string]any{"whatsapp_business_account_id": "3000003"}), SubcodeMessagingIDs},
		{"whatsapp without waba", messaging("whatsapp", map[string]any{"ctwa_clid": "ARAkLk"}), SubcodeMessagingIDs},
		{"messenger", messaging("messenger", map[string]any{"page_id": "1", "page_scoped_user_id": "2"}), 0},
		{"messenger without psid", messaging("messenger", map[string]any{"page_id": "1"}), SubcodeMessagingIDs},
		{"instagram", messaging("instagram", map[string]any{"ig_sid": "5", "instagram_business_account_id": "4"}), 0},
		{"instagram without ig_sid", messaging("instagram", map[string]any{"ig_account_id": "4"}), SubcodeMessagingIDs},
		{"business_messaging without channel", func(e map[string]any) {
			messaging("whatsapp", map[string]any{"whatsapp_business_account_id": "3", "ctwa_clid": "c"})(e)
			delete(e, "messaging_channel")
		}, SubcodeMessagingChannel},
		{"unknown channel", messaging("telegram", nil), SubcodeMessagingChannel},
		{"channel on web event ok", func(e map[string]any) { e["messaging_channel"] = "whatsapp" }, 0},
		{"segmentation top level", func(e map[string]any) { e["customer_segmentation"] = "new_customer_to_business" }, 0},
		{"segmentation in custom_data", func(e map[string]any) { custom(e)["customer_segmentation"] = "customer_in_loyalty_program" }, 0},
		{"segmentation unknown", func(e map[string]any) { e["customer_segmentation"] = "vip" }, SubcodeSegmentation},
		{"segmentation unknown in custom_data", func(e map[string]any) { custom(e)["customer_segmentation"] = "New_Customer" }, SubcodeSegmentation},
		{"original event", func(e map[string]any) {
			e["original_event_data"] = map[string]any{"event_name": "Lead", "event_time": testNow.Unix() - 86400}
		}, 0},
		{"original event empty", func(e map[string]any) { e["original_event_data"] = map[string]any{} }, SubcodeOriginalEvent},
		{"original event millis", func(e map[string]any) {
			e["original_event_data"] = map[string]any{"event_time": testNow.UnixMilli()}
		}, SubcodeOriginalEvent},
		{"delivery category", func(e map[string]any) { custom(e)["delivery_category"] = "curbside" }, 0},
		{"delivery category unknown", func(e map[string]any) { custom(e)["delivery_category"] = "drone" }, SubcodeDeliveryCategory},
		{"contents delivery category unknown", func(e map[string]any) {
			custom(e)["contents"] = []any{map[string]any{"id": "a", "quantity": 1, "delivery_category": "Curbside"}}
		}, SubcodeDeliveryCategory},
		{"contents not objects", func(e map[string]any) { custom(e)["contents"] = []int{1} }, SubcodeInvalidCustom},
		{"predicted_ltv not a number", func(e map[string]any) { custom(e)["predicted_ltv"] = "lots" }, SubcodeInvalidCustom},
		{"fb_login_id", func(e map[string]any) { user(e)["fb_login_id"] = 100200300 }, 0},
		{"fb_login_id not integer", func(e map[string]any) { user(e)["fb_login_id"] = "abc" }, SubcodeInvalidFBLoginID},
		{"messaging ids alone are customer information", func(e map[string]any) {
			e["action_source"] = "business_messaging"
			delete(e, "event_source_url")
			e["messaging_channel"] = "messenger"
			e["user_data"] = map[string]any{"page_id": "1", "page_scoped_user_id": "2"}
		}, 0},
		{"ldu without state or ip", func(e map[string]any) {
			delete(user(e), "client_ip_address")
			e["data_processing_options"] = []string{"LDU"}
			e["data_processing_options_country"] = 0
		}, SubcodeInvalidDPO},
		{"ldu without state, with ip", func(e map[string]any) {
			e["data_processing_options"] = []string{"LDU"}
			e["data_processing_options_country"] = 0
		}, 0},
		{"ldu state without us", func(e map[string]any) {
			e["data_processing_options"] = []string{"LDU"}
			e["data_processing_options_country"] = 0
			e["data_processing_options_state"] = 1000
		}, SubcodeInvalidDPO},
		{"ldu country 2", func(e map[string]any) {
			e["data_processing_options"] = []string{"LDU"}
			e["data_processing_options_country"] = 2
			e["data_processing_options_state"] = 0
		}, SubcodeInvalidDPO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer()
			ev := validEvent()
			tt.mutate(ev)
			r := postJSON(t, s, eventsPath(pixel, token), map[string]any{"data": []any{ev}})
			if tt.subcode == 0 {
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %s", r.status, r.raw)
				}
				return
			}
			wantError(t, r, CodeInvalidParameter, tt.subcode)
		})
	}
}

func TestWireHashEveryByte(t *testing.T) {
	const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for c := 0; c < 256; c++ {
		want := '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
		for _, v := range []string{digest, digest[:32]} {
			for _, at := range []int{0, len(v) - 1} {
				b := []byte(v)
				b[at] = byte(c)
				if got := wireHash(string(b)); got != want {
					t.Errorf("wireHash of %d digits with byte %#x at %d = %v, want %v", len(v), c, at, got, want)
				}
			}
		}
	}
}
