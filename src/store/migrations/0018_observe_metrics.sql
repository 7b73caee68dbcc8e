-- Observe: a metric series remembers its OTLP aggregation temporality, so rates and histogram
-- quantiles know whether samples are deltas or running totals (additive).
ALTER TABLE metric_series ADD COLUMN temporality text NULL
  CONSTRAINT metric_series_temporality_check CHECK (temporality IN ('delta', 'cumulative'));
