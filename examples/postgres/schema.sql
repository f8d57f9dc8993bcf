-- A small shop: the tests change it and check what they see.
CREATE TABLE customers (
    id    integer PRIMARY KEY,
    name  text NOT NULL,
    email text NOT NULL UNIQUE
);
CREATE TABLE products (
    id    integer PRIMARY KEY,
    name  text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    stock integer NOT NULL CHECK (stock >= 0)
);
CREATE TABLE orders (
    id          serial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    product_id  integer NOT NULL REFERENCES products(id),
    quantity    integer NOT NULL CHECK (quantity > 0)
);
