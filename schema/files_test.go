package schema

import (
	"bytes"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name    string
		kind    Kind
		json    string
		check   func(t *testing.T, ev Event)
		wantErr Reason
	}{
		{"web purchase", KindWeb, `{"event_id":"o1","event_name":"Purchase","event_time":1700000000,"pixel_id":"123",
			"email":"A@B.co","client_user_agent":"UA","custom_data":{"value":12.5,"currency":"usd","contents":[{"id":"sku","quantity":2}]}}`,
			func(t *testing.T, ev Event) {
				if ev.ActionSource != "website" || ev.User.Emails[0] != "A@B.co" || *ev.Custom.Value != 12.5 || ev.Custom.Contents[0].Quantity != 2 {
					t.Errorf("mapped %+v", ev)
				}
			}, 0},
		{"offline approval with customer record", KindOffline, `{"event_id":"a1","event_name":"Approval","event_time":1700000000000,
			"pixel_id":"9","action_source":"system_generated","crm_name":"Salesforce","customer":{"emails":["x@y.z"],"first_name":"Mary"}}`,
			func(t *testing.T, ev Event) {
				if ev.EventTime != 1700000000 || ev.CRMName != "Salesforce" || ev.User.FirstNames[0] != "Mary" {
					t.Errorf("mapped %+v", ev)
				}
			}, 0},
		{"missing pixel", KindWeb, `{"event_id":"o1","event_name":"Purchase","event_time":1700000000}`, nil, ReasonMissingField},
		{"not json", KindWeb, `{"event_id":`, nil, ReasonAvro},
		{"string where a number belongs", KindWeb, `{"event_id":"o1","event_name":"P","event_time":"soon","pixel_id":"1"}`, nil, ReasonInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeJSON(tt.kind, []byte(tt.json))
			if tt.wantErr != 0 {
				if ReasonOf(err) != tt.wantErr {
					t.Fatalf("err %v, want reason %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, ev)
		})
	}
}

func TestReadJSONLinesNamesTheLine(t *testing.T) {
	in := "{\"event_id\":\"1\",\"event_name\":\"P\",\"event_time\":1700000000,\"pixel_id\":\"1\"}\n\n{\"event_id\":\"2\"}\n"
	var lines []int
	var bad []int
	err := ReadJSONLines(strings.NewReader(in), KindWeb, func(line int, ev Event, err error) error {
		lines = append(lines, line)
		if err != nil {
			bad = append(bad, line)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || len(bad) != 1 || bad[0] != 3 {
		t.Fatalf("lines %v bad %v", lines, bad)
	}
}

func TestReadContainerFile(t *testing.T) {
	text, _ := EmbeddedSchema(SchemaOfflineEvent)
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: text})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := NewEncoder()
	var natives []any
	for _, id := range []string{"a", "b"} {
		b, err := enc.AppendRaw(nil, Event{Kind: KindOffline, EventID: id, EventName: "Approval", EventTime: 1700000000, PixelID: "9", ActionSource: "physical_store"})
		if err != nil {
			t.Fatal(err)
		}
		codec, _ := goavro.NewCodec(text)
		n, _, err := codec.NativeFromBinary(b)
		if err != nil {
			t.Fatal(err)
		}
		natives = append(natives, n)
	}
	if err := w.Append(natives); err != nil {
		t.Fatal(err)
	}
	var ids []string
	err = ReadContainerFile(&buf, 0, func(i int, ev Event, err error) error {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if ev.Kind != KindOffline {
			t.Fatalf("kind %v", ev.Kind)
		}
		ids = append(ids, ev.EventID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "a,b" {
		t.Fatalf("read %v", ids)
	}
}
