package sink

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink/emulator"
)

// Golden request bodies: what Build produces for each kind of event, as the whole JSON body
// the Sender posts. Regenerate with `go test ./sink -run TestGoldenRequests -update` and
// review the diff: a change here is a change on Meta's wire.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func boolp(b bool) *bool { return &b }

func iosExtInfo() []string {
	return []string{"i2", "com.shop.app", "4.2", "4.2 (1234)", "17.4.1", "iPhone15,2", "en_US", "CET",
		"Orange", "1179", "2556", "3.0", "6", "128", "64", "Europe/Paris"}
}

type goldenCase struct {
	file string
	ev   schema.Event
	opts BuildOptions
}

func goldenCases() []goldenCase {
	web := webPurchase()
	web.User.Emails = web.User.Emails[:2] // the two spellings of one address: deduped
	web.ReferrerURL = "https://shop.example.com/cart"
	web.User.SubscriptionID = "sub-778"
	web.User.FBLoginID = "100200300400"
	web.Custom.ContentIDs = []string{"product123"}
	web.Custom.ContentName = "Espresso machine"
	web.Custom.ContentCategory = "kitchen"
	web.Custom.NumItems = 1
	web.Custom.PredictedLTV = f64(900)
	web.Custom.NetRevenue = f64(41.2)
	web.Custom.DeliveryCategory = "Home_Delivery"
	web.Custom.Contents[0].Title = "Espresso machine"
	web.Custom.Contents[0].Brand = "Acme"
	web.Custom.Contents[0].Category = "kitchen > coffee"
	web.Custom.Contents[0].DeliveryCategory = "home_delivery"
	web.CustomerSegmentation = "new_customer_to_business"
	web.Consent.LimitedDataUse = true // geolocated: country 0, state 0

	approval := offlineApproval()
	approval.User.Emails = []string{"John_Smith@gmail.com"}
	approval.User.FirstNames = []string{"Mary"}
	approval.User.LastNames = []string{"Smith"}
	approval.User.DatesOfBirth = []string{"1997-02-16"}
	approval.User.Genders = []string{"F"}
	approval.User.Cities = []string{"New York"}
	approval.User.States = []string{"CA"}
	approval.User.ExternalIDs = []string{"SF-0031"}
	approval.Custom = schema.CustomData{
		Value: f64(0), Currency: "usd", OrderID: "application-5521", ItemNumber: "card-gold",
		ContentName: "Gold credit card", ContentCategory: "credit_cards", Status: "approved",
	}
	approval.CustomerSegmentation = "new_customer_to_business_line"
	approval.OriginalEvent = &schema.OriginalEventData{
		EventName: "SubmitApplication", EventTime: buildNow.Unix() - 3*86400, OrderID: "application-5521",
		EventID: "web-app-5521",
	}

	lead := schema.Event{
		Kind: schema.KindOffline, EventID: "hs-deal-77-stage-3", EventName: "Qualified Lead",
		EventTime: buildNow.Unix() - 600, PixelID: "1234567890", ActionSource: "system_generated",
		User:    schema.UserData{LeadID: "123456789012345", Emails: []string{"john_smith@gmail.com"}},
		CRMName: "HubSpot",
		Consent: schema.Consent{Known: true, AdsAllowed: true},
	}

	app := schema.Event{
		Kind: schema.KindWeb, EventID: "ios-order-9", EventName: "Purchase", EventTime: buildNow.Unix() - 30,
		PixelID: "1234567890", ActionSource: "app",
		User: schema.UserData{
			Emails: []string{"john_smith@gmail.com"}, ExternalIDs: []string{"user-42"},
			ClientIPAddress: "203.0.113.7", ClientUserAgent: "ShopApp/4.2 CFNetwork/1494 Darwin/23.4.0",
			MADID: "38400000-8CF0-11BD-B23E-10B96E40000D", AnonID: "XZ8a2f0e6c-6a1e-4f5e-b8f1-0e2c6c5d9a11",
		},
		Custom: schema.CustomData{Value: f64(4.99), Currency: "EUR", ContentType: "product",
			Contents: []schema.Content{{ID: "coins-500", Quantity: 1, ItemPrice: f64(4.99)}}},
		App: &schema.AppData{
			AdvertiserTrackingEnabled: boolp(true), ApplicationTrackingEnabled: boolp(true),
			ExtInfo: iosExtInfo(), URLSchemes: []string{"shopapp"}, VendorID: "6D92078A-8246-4BA4-AE5B-76104861E7DC",
			CampaignIDs: "ARFUJTj1QuP",
		},
		Consent: schema.Consent{Known: true, AdsAllowed: true},
	}

	bm := schema.Event{
		Kind: schema.KindOffline, EventID: "wa-order-31", EventName: "Purchase", EventTime: buildNow.Unix() - 120,
		PixelID: "1234567890", ActionSource: "business_messaging", MessagingChannel: "WhatsApp",
		User: schema.UserData{
			Phones: []string{"+1 (650) 555-1212"}, WhatsAppBusinessAccountID: "104612345678901",
			CTWAClid: "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a",
		},
		Custom:               schema.CustomData{Value: f64(25), Currency: "USD"},
		CustomerSegmentation: "existing_customer_to_business",
		Consent:              schema.Consent{Known: true, AdsAllowed: true},
	}

	store := schema.Event{
		Kind: schema.KindOffline, EventID: "pos-4411-2", EventName: "Purchase", EventTime: buildNow.Unix() - 7200,
		PixelID: "1234567890", ActionSource: "physical_store",
		User: schema.UserData{
			Emails: []string{"john_smith@gmail.com"}, Phones: []string{"+44 161 496 0000"},
			FirstNames: []string{"Mary"}, LastNames: []string{"Smith"}, Zips: []string{"M1 1AE"},
			Countries: []string{"GB"},
		},
		Custom: schema.CustomData{
			Value: f64(59.9), Currency: "GBP", OrderID: "pos-4411", ItemNumber: "2",
			DeliveryCategory: "in_store",
			Contents: []schema.Content{
				{ID: "sku-1", Quantity: 2, ItemPrice: f64(19.95), DeliveryCategory: "in_store"},
				{ID: "sku-7", Quantity: 1, ItemPrice: f64(20)},
			},
			Store: &schema.StoreData{StorePageID: "201234567890123", BrandPageID: "109876543210987", StoreCode: "MAN-01"},
		},
		Consent: schema.Consent{Known: true, AdsAllowed: true},
	}

	return []goldenCase{
		{"web_purchase.json", web, BuildOptions{}},
		{"offline_approval.json", approval, BuildOptions{}},
		{"crm_lead_stage.json", lead, BuildOptions{}},
		{"app_event.json", app, BuildOptions{}},
		{"business_messaging.json", bm, BuildOptions{SegmentationTopLevel: true}},
		{"store_purchase.json", store, BuildOptions{}},
	}
}

const goldenPixel, goldenToken = "1234567890", "EAAgolden"

func TestGoldenRequests(t *testing.T) {
	srv := httptest.NewServer(emulator.New(
		emulator.WithPixel(goldenPixel, goldenToken),
		emulator.WithClock(func() time.Time { return buildNow }),
	))
	defer srv.Close()
	for _, gc := range goldenCases() {
		t.Run(gc.file, func(t *testing.T) {
			opts := gc.opts
			opts.Now, opts.Hasher = buildNow, NewHasher()
			ev, drops := Build(gc.ev, opts)
			if drops != nil {
				t.Fatalf("drops = %+v, want none", drops)
			}
			req := Request{Data: []*Event{&ev}, PartnerAgent: "capirelay"}
			if err := ValidateRequest(&req, buildNow, ValidateOptions{}); err != nil {
				t.Fatalf("sink.ValidateRequest: %v", err)
			}
			compact, err := json.Marshal(&req)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := json.Indent(&got, compact, "", "  "); err != nil {
				t.Fatal(err)
			}
			got.WriteByte('\n')
			path := filepath.Join("testdata", gc.file)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("%s differs from Build's output (rerun with -update if intended)\n got:\n%s", path, got.Bytes())
			}
			// The golden file itself must be accepted by the emulator, which reads the JSON
			// independently of the sink's types: Build and the emulator agree on it.
			resp, err := http.Post(srv.URL+"/v25.0/"+goldenPixel+"/events?access_token="+goldenToken,
				"application/json", bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("emulator rejected %s: %d %s", gc.file, resp.StatusCode, body)
			}
		})
	}
}
