//! RouterOS language layer: typed commands and print-detail parsers/renderers.
