package ferretfile

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// FerretDB v1.24 stores each document as one JSON object in "sjson" (its internal/handler/sjson):
// the document's fields as JSON values beside a "$s" field holding their schema, which says each
// field's BSON type and keeps the field order:
//
//	{"$s": {"p": {"_id": {"t": "objectId"}, "n": {"t": "int"}}, "$k": ["_id", "n"]},
//	 "_id": "65a1…", "n": 3}
//
// A value is JSON null whatever its schema says for a BSON null. The types and their encodings:
//
//	object     JSON object; schema {"t":"object","$s":{"p":{…},"$k":[…]}} ("$s" is {} when empty)
//	array      JSON array; schema {"t":"array","i":[<schema of each item>]}
//	double     JSON number (FerretDB cannot write NaN or ±Inf, and writes -0 as 0)
//	string     JSON string
//	binData    base64 string; schema {"t":"binData","s":<subtype>}
//	objectId   24 hex digits
//	bool       true / false
//	date       milliseconds since the epoch
//	null       null
//	regex      the pattern as a string; schema {"t":"regex","o":"<options>"}
//	int        JSON number (int32)
//	timestamp  JSON number (uint64: seconds << 32 | increment)
//	long       JSON number (int64)

// sjsonSchema is a document's schema: its fields' types and their order.
type sjsonSchema struct {
	Props map[string]*sjsonElem `json:"p"`
	Keys  []string              `json:"$k"`
}

// sjsonElem is one value's type.
type sjsonElem struct {
	Type    string       `json:"t"`
	Schema  *sjsonSchema `json:"$s"` // object
	Options *string      `json:"o"`  // regex
	Items   []*sjsonElem `json:"i"`  // array
	Subtype *byte        `json:"s"`  // binData
}

// decodeSJSON converts one stored document to BSON, fields in the schema's order.
func decodeSJSON(data []byte) (bson.Raw, error) {
	var fields map[string]json.RawMessage
	if err := strictUnmarshal(data, &fields, false); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	rawSchema, ok := fields["$s"]
	if !ok {
		return nil, fmt.Errorf("no schema ($s)")
	}
	delete(fields, "$s")
	var sch sjsonSchema
	if err := strictUnmarshal(rawSchema, &sch, true); err != nil {
		return nil, fmt.Errorf("schema ($s): %w", err)
	}
	d, err := decodeObject(fields, &sch)
	if err != nil {
		return nil, err
	}
	return bson.Marshal(d)
}

// strictUnmarshal decodes data, which must hold exactly one JSON value, into v.
func strictUnmarshal(data []byte, v any, disallowUnknown bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if disallowUnknown {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if rest := bytes.TrimSpace(data[dec.InputOffset():]); len(rest) > 0 {
		return fmt.Errorf("data after the JSON value: %.20q", rest)
	}
	return nil
}

func decodeObject(fields map[string]json.RawMessage, sch *sjsonSchema) (bson.D, error) {
	if len(fields) == 0 {
		return bson.D{}, nil
	}
	if sch == nil {
		return nil, fmt.Errorf("no schema for a non-empty object")
	}
	if len(sch.Keys) != len(fields) {
		return nil, fmt.Errorf("%d keys in the schema, %d fields", len(sch.Keys), len(fields))
	}
	d := make(bson.D, 0, len(sch.Keys))
	for _, k := range sch.Keys {
		raw, ok := fields[k]
		if !ok {
			return nil, fmt.Errorf("field %q is in the schema, not in the document", k)
		}
		v, err := decodeValue(raw, sch.Props[k])
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		d = append(d, bson.E{Key: k, Value: v})
	}
	return d, nil
}

func decodeValue(raw json.RawMessage, e *sjsonElem) (any, error) {
	if bytes.Equal(raw, []byte("null")) {
		return nil, nil // FerretDB writes a BSON null as null whatever the schema says
	}
	if e == nil {
		return nil, fmt.Errorf("no schema")
	}
	switch e.Type {
	case "object":
		if e.Schema == nil {
			return nil, fmt.Errorf("object without a schema")
		}
		var fields map[string]json.RawMessage
		if err := strictUnmarshal(raw, &fields, false); err != nil {
			return nil, fmt.Errorf("object: %w", err)
		}
		return decodeObject(fields, e.Schema)
	case "array":
		var items []json.RawMessage
		if err := strictUnmarshal(raw, &items, false); err != nil {
			return nil, fmt.Errorf("array: %w", err)
		}
		if len(e.Items) != len(items) {
			return nil, fmt.Errorf("array: %d items in the schema, %d in the array", len(e.Items), len(items))
		}
		a := make(bson.A, len(items))
		for i, it := range items {
			v, err := decodeValue(it, e.Items[i])
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			a[i] = v
		}
		return a, nil
	case "double":
		return scalar[float64](raw, e.Type)
	case "string":
		return scalar[string](raw, e.Type)
	case "binData":
		b, err := scalar[[]byte](raw, e.Type)
		if err != nil {
			return nil, err
		}
		if e.Subtype == nil {
			return nil, fmt.Errorf("binData without a subtype")
		}
		if b == nil {
			b = []byte{}
		}
		return bson.Binary{Subtype: *e.Subtype, Data: b}, nil
	case "objectId":
		s, err := scalar[string](raw, e.Type)
		if err != nil {
			return nil, err
		}
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != len(bson.ObjectID{}) {
			return nil, fmt.Errorf("objectId %q is not %d hex bytes", s, len(bson.ObjectID{}))
		}
		return bson.ObjectID(b), nil
	case "bool":
		return scalar[bool](raw, e.Type)
	case "date":
		ms, err := scalar[int64](raw, e.Type)
		return bson.DateTime(ms), err
	case "null":
		return nil, fmt.Errorf("null: %s", raw)
	case "regex":
		p, err := scalar[string](raw, e.Type)
		if err != nil {
			return nil, err
		}
		if e.Options == nil {
			return nil, fmt.Errorf("regex without options")
		}
		return bson.Regex{Pattern: p, Options: *e.Options}, nil
	case "int":
		return scalar[int32](raw, e.Type)
	case "timestamp":
		ts, err := scalar[uint64](raw, e.Type)
		return bson.Timestamp{T: uint32(ts >> 32), I: uint32(ts)}, err
	case "long":
		return scalar[int64](raw, e.Type)
	}
	return nil, fmt.Errorf("unknown sjson type %q", e.Type)
}

func scalar[T any](raw json.RawMessage, typ string) (T, error) {
	var v T
	if err := strictUnmarshal(raw, &v, false); err != nil {
		return v, fmt.Errorf("%s: %s: %w", typ, raw, err)
	}
	return v, nil
}
