DROP TABLE conversions;
