package gql

import (
	"reflect"
	"testing"
)

func TestCodes(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		want   []string
	}{
		{"OK", 200, `{"data":{"events":{"edges":[]}}}`, nil},
		{"OKWithErrorsInData", 200, `{"data":{"title":"errors"}}`, []string{}},
		{"Codes", 200, `{"errors":[{"message":"a","extensions":{"code":"FORBIDDEN"}},{"message":"b"}],"data":null}`, []string{"FORBIDDEN", "NO_CODE"}},
		{"Throttled", 429, `{"errors":[{"message":"slow down","extensions":{"code":"RATE_LIMITED"}}]}`, []string{"RATE_LIMITED"}},
		{"HTMLOn200", 200, `<html>`, []string{"NOT_JSON"}},
		{"HTMLOn502", 502, `<html>`, nil},
		{"Empty200", 200, ``, []string{"NOT_JSON"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Codes(c.status, []byte(c.body)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Codes = %#v, want %#v", got, c.want)
			}
		})
	}
}
