package resolvers

import (
	"github.com/eventide/server/cache"
	"github.com/eventide/server/graph/model"
	"github.com/eventide/server/memstats"
	"github.com/eventide/server/security"
)

// The admin's monitoring types are the adapters' own (cache.Stats, memstats.Sample,
// security.Event); the schema binds generated models instead, converted here, so that graph/
// depends on no adapter and an adapter's struct can change without changing the API.

func cacheStats(s cache.Stats) *model.CacheStats {
	return &model.CacheStats{
		Backend: s.Backend, FallbackActive: s.FallbackActive,
		Hits: s.Hits, Misses: s.Misses, HitRatio: s.HitRatio(),
		Entries: s.Entries, Capacity: s.Capacity, Evictions: s.Evictions, TTLSeconds: s.TTLSeconds,
		ResponseHits: s.ResponseHits, ResponseMisses: s.ResponseMisses,
		ResponseEntries: s.ResponseEntries, ResponseBytes: s.ResponseBytes,
	}
}

// memoryStats converts s; the limit and the usage are null when no limit is in force.
func memoryStats(s memstats.Sample) *model.MemoryStats {
	m := &model.MemoryStats{
		At: s.At, RssBytes: s.RSSBytes,
		HeapAllocBytes: s.HeapAllocBytes, HeapInuseBytes: s.HeapInuseBytes, HeapSysBytes: s.HeapSysBytes,
		StackInuseBytes: s.StackInuseBytes, TotalBytes: s.TotalBytes,
		Goroutines: s.Goroutines, GcCycles: s.GCCycles, LastGcPauseNs: s.LastGCPauseNs,
	}
	if s.MemoryLimitBytes > 0 {
		limit, usage := s.MemoryLimitBytes, s.UsagePercent
		m.MemoryLimitBytes, m.UsagePercent = &limit, &usage
	}
	return m
}

// securityEvent converts e; its empty strings are nulls.
func securityEvent(e security.Event) *model.SecurityEvent {
	return &model.SecurityEvent{
		ID: e.ID, Type: model.SecurityEventType(e.Type), Severity: model.Severity(e.Severity), At: e.At,
		IP: optional(e.IP), UserID: optional(e.UserID), Email: optional(e.Email),
		UserAgent: optional(e.UserAgent), Operation: optional(e.Operation),
		Message: e.Message, Count: e.Count,
	}
}

// securityFilter is the log's filter for the schema's.
func securityFilter(in *model.SecurityEventFilter) security.Filter {
	var f security.Filter
	if in == nil {
		return f
	}
	for _, t := range in.Types {
		f.Types = append(f.Types, security.EventType(t))
	}
	if in.MinSeverity != nil {
		f.MinSeverity = security.Severity(*in.MinSeverity)
	}
	if in.IP != nil {
		f.IP = *in.IP
	}
	if in.UserID != nil {
		f.UserID = *in.UserID
	}
	if in.Since != nil {
		f.Since = *in.Since
	}
	return f
}
