//! Order webhooks from Shopify, WooCommerce and Stripe: each platform's signature over the raw
//! body, checked in constant time, and the order its payload announces.
