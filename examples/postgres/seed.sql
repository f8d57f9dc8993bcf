-- The seed: 1000 customers, 100 products, 5000 orders. Deterministic, so a
-- test knows the counts and sums it starts from.
INSERT INTO customers
  SELECT i, 'customer ' || i, 'c' || i || '@example.test' FROM generate_series(1, 1000) AS i;
INSERT INTO products
  SELECT i, 'product ' || i, 100 * i, 1000 FROM generate_series(1, 100) AS i;
INSERT INTO orders (customer_id, product_id, quantity)
  SELECT 1 + (i % 1000), 1 + (i % 100), 1 + (i % 5) FROM generate_series(1, 5000) AS i;
